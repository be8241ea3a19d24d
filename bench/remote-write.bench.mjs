// npm run bench:remote-write: what the collector spends on one Prometheus remote write request,
// decompressing (ours against snappyjs on the same bytes), decoding the WriteRequest and building
// the queue messages, for the dcgm-exporter fleet Prometheus would scrape, in one run.
import path from 'node:path';
import { fmt, printTable, require, root } from './lib/harness.mjs';

const { snappyDecode } = require(path.join(root, 'apps/collector/dist/remote-write/snappy.js'));
const { decodeWriteRequest, encodeWriteRequest } = require(
  path.join(root, 'apps/collector/dist/remote-write/write-request.js'),
);
const { buildSeriesMessages } = require(
  path.join(root, 'apps/collector/dist/remote-write/series-messages.js'),
);
const { DcgmSimulator } = require(path.join(root, 'libs/dcgm-simulator/dist/dcgm-simulator.js'));
const snappy = require('snappyjs');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const now = Date.now();

/** The series of `hosts` simulated exporters as Prometheus sends them: job, instance, one sample each. */
function request(hosts, samplesPerSeries) {
  const simulator = new DcgmSimulator({ hosts, gpusPerHost: 8 });
  const series = [];
  for (let h = 1; h <= hosts; h++) {
    for (const line of simulator.render(h).split('\n')) {
      const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
      if (!match) continue;
      const labels = [{ name: '__name__', value: match[1] }];
      for (const [, name, value] of match[2].matchAll(/(\w+)="([^"]*)"/g)) labels.push({ name, value });
      labels.push({ name: 'instance', value: `node-${h}:9400` }, { name: 'job', value: 'dcgm' });
      labels.sort((a, b) => (a.name < b.name ? -1 : 1));
      const timestamps = Array.from({ length: samplesPerSeries }, (_, k) => now - k * 15_000).reverse();
      series.push({ labels, timestamps, values: timestamps.map(() => Number(match[3])) });
    }
  }
  return encodeWriteRequest(series);
}

function best(fn) {
  fn();
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    fn();
    min = Math.min(min, performance.now() - started);
  }
  return min;
}

const limits = { maxSeries: 1e7, maxSamples: 1e7, maxTimestampMs: now + 86_400_000 };
const rows = [];
for (const [name, hosts, perSeries] of [
  ['Prometheus default batch (~2,000 samples)', 7, 1],
  ['large request (64 hosts, 20,480 series x 5 samples)', 64, 5],
]) {
  const protobuf = request(hosts, perSeries);
  const compressed = Buffer.from(snappy.compress(protobuf));
  const decoded = decodeWriteRequest(snappyDecode(compressed, 1 << 30), limits);
  const ours = best(() => snappyDecode(compressed, 1 << 30));
  const reference = best(() => snappy.uncompress(compressed));
  const decode = best(() => decodeWriteRequest(protobuf, limits));
  const build = best(() => buildSeriesMessages('0'.repeat(64), decoded.series));
  const total = ours + decode + build;
  rows.push([
    name,
    `${(compressed.length / 1024).toFixed(0)} / ${(protobuf.length / 1024).toFixed(0)} KiB`,
    fmt(ours, 2),
    fmt(reference, 2),
    fmt(decode, 2),
    fmt(build, 2),
    fmt(decoded.samples / (total / 1000)),
  ]);
}
printTable(
  `Remote write: decompress, decode, build queue messages (best of ${ROUNDS})`,
  [
    'request',
    'snappy / protobuf',
    'snappy ms (ours)',
    'snappy ms (snappyjs)',
    'decode ms',
    'messages ms',
    'samples/s',
  ],
  rows,
);
