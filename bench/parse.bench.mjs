// npm run bench:parse: our streaming exposition parser against parse-prometheus-text-format, on
// the same dcgm-exporter text (64 hosts x 8 GPUs x 40 metrics), in one run.
import path from 'node:path';
import { fmt, printTable, require, root } from './lib/harness.mjs';

const { ExpositionParser } = require(path.join(root, 'apps/collector/dist/parsing/exposition-parser.js'));
const { toScrapedSample } = require(path.join(root, 'apps/collector/dist/parsing/to-telemetry.js'));
const { isScrapedSample } = require(path.join(root, 'libs/model/dist/index.js'));
const { MessageBuilder } = require(path.join(root, 'apps/collector/dist/publishing/message-builder.js'));
const { DcgmSimulator, SIMULATED_METRICS } = require(
  path.join(root, 'libs/dcgm-simulator/dist/dcgm-simulator.js'),
);
const parsePrometheusTextFormat = require('parse-prometheus-text-format');

const HOSTS = Number(process.env.BENCH_HOSTS ?? 64);
const GPUS = 8;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const simulator = new DcgmSimulator({ hosts: HOSTS, gpusPerHost: GPUS });
const pages = Array.from({ length: HOSTS }, (_, h) => simulator.render(h + 1));
const text = pages.join('');
const expected = HOSTS * GPUS * SIMULATED_METRICS;

function ours() {
  let n = 0;
  const parser = new ExpositionParser({ onSample: () => n++ });
  // As scrapes arrive: in network-sized chunks.
  for (let i = 0; i < text.length; i += 64 * 1024) parser.push(text.slice(i, i + 64 * 1024));
  parser.end();
  return n;
}

function oursWithMapping() {
  let n = 0;
  const now = Date.now();
  const parser = new ExpositionParser({ onSample: (s) => (toScrapedSample(s, now) ? n++ : 0) });
  for (let i = 0; i < text.length; i += 64 * 1024) parser.push(text.slice(i, i + 64 * 1024));
  parser.end();
  return n;
}

/** As a scrape does: mapped, then checked to be a sample the store takes (isScrapedSample). */
function oursChecked() {
  let n = 0;
  const now = Date.now();
  const parser = new ExpositionParser({
    onSample: (s) => {
      const sample = toScrapedSample(s, now);
      if (sample && isScrapedSample(sample)) n++;
    },
  });
  for (let i = 0; i < text.length; i += 64 * 1024) parser.push(text.slice(i, i + 64 * 1024));
  parser.end();
  return n;
}

/** The whole of a scrape's work on a sample: parsed, mapped, checked, and framed into queue messages. */
function oursFramed() {
  let n = 0;
  const now = Date.now();
  const messages = new MessageBuilder('http://bench:9400/metrics', now);
  const parser = new ExpositionParser({
    onSample: (s) => {
      const sample = toScrapedSample(s, now);
      if (sample && isScrapedSample(sample)) {
        messages.add(sample);
        n++;
      }
    },
  });
  for (let i = 0; i < text.length; i += 64 * 1024) parser.push(text.slice(i, i + 64 * 1024));
  parser.end();
  if (messages.finish().length === 0) throw new Error('no messages');
  return n;
}

function reference() {
  let n = 0;
  for (const family of parsePrometheusTextFormat(text)) n += family.metrics.length;
  return n;
}

function measure(fn) {
  if (fn() !== expected) throw new Error(`${fn.name} found a different number of samples`);
  const times = [];
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    fn();
    times.push(performance.now() - started);
    peak = Math.max(peak, process.memoryUsage().heapUsed - heapBefore);
  }
  const best = Math.min(...times);
  return { samplesPerSecond: expected / (best / 1000), ms: best, peakMb: peak / 1024 / 1024 };
}

// Alternate, so neither gets the warmer machine.
const results = { reference: [], ours: [], mapped: [], checked: [], framed: [] };
for (let i = 0; i < 3; i++) {
  results.reference.push(measure(reference));
  results.ours.push(measure(ours));
  results.mapped.push(measure(oursWithMapping));
  results.checked.push(measure(oursChecked));
  results.framed.push(measure(oursFramed));
}
const best = (list) => list.reduce((a, b) => (a.samplesPerSecond > b.samplesPerSecond ? a : b));
const ref = best(results.reference);
const rows = [
  ['parse-prometheus-text-format (reference)', ref],
  ['gpu-telemetry ExpositionParser', best(results.ours)],
  ['gpu-telemetry parse + map to a sample', best(results.mapped)],
  ['gpu-telemetry parse + map + storable check', best(results.checked)],
  ['gpu-telemetry parse + map + check + framed into messages (a scrape)', best(results.framed)],
].map(([name, r]) => [
  name,
  fmt(r.samplesPerSecond),
  fmt(r.ms, 1),
  fmt(r.samplesPerSecond / ref.samplesPerSecond, 2),
]);
printTable(
  `Exposition parsing: ${HOSTS} hosts x ${GPUS} GPUs x ${SIMULATED_METRICS} metrics = ${expected.toLocaleString()} samples, ${(text.length / 1024 / 1024).toFixed(1)} MiB (best of ${ROUNDS * 3})`,
  ['parser', 'samples/s', 'ms per pass', 'ratio to reference'],
  rows,
);
