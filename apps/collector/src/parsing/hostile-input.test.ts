import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { readTelemetryCsv } from '../sources/csv-samples';
import { parseExposition } from './exposition-parser';

const FIXTURE = readFileSync(
  path.resolve(__dirname, '../../../../fixtures/dcgm-exporter/johnsblog-a800-mig-8gpu.prom'),
  'utf8',
);
const CSV = readFileSync(
  path.resolve(__dirname, '../../../../fixtures/csv/dcgm_metrics_20250718_134233.csv'),
  'utf8',
);

/** Parsers meet garbage: they report errors, never throw, and take bounded time. */
describe('the exposition parser on hostile input', () => {
  it('never throws on random text, and reports every line it cannot read', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2_000, unit: 'binary' }), (text) => {
        const started = performance.now();
        const { samples, errors } = parseExposition(text);
        expect(samples.length + errors.length).toBeLessThanOrEqual(text.split('\n').length);
        expect(performance.now() - started).toBeLessThan(200);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on real output truncated or corrupted at any point', () => {
    fc.assert(
      fc.property(
        fc.nat(FIXTURE.length),
        fc.nat(FIXTURE.length),
        fc.string({ maxLength: 5 }),
        (cut, at, junk) => {
          const text = FIXTURE.slice(0, at) + junk + FIXTURE.slice(at, cut);
          expect(() => parseExposition(text)).not.toThrow();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('the CSV reader on hostile input', () => {
  it('never throws on random or truncated CSV', () => {
    fc.assert(
      fc.property(fc.nat(CSV.length), fc.string({ maxLength: 50 }), (cut, junk) => {
        const started = performance.now();
        expect(() => readTelemetryCsv(CSV.slice(0, cut) + junk)).not.toThrow();
        expect(performance.now() - started).toBeLessThan(1_000);
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 1_000 }), (text) => {
        expect(() => readTelemetryCsv(text)).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });
});
