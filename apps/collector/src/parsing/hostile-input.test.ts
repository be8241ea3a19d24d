import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { readTelemetryCsv } from '../sources/csv-samples';
import { ExpositionParser, parseExposition } from './exposition-parser';

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

describe('the exposition parser on input built to be slow', () => {
  const time = (fn: () => void) => {
    const started = performance.now();
    fn();
    return performance.now() - started;
  };

  it('refuses long digit runs in linear time: 100 lines of 60,000 digits', () => {
    // The regex it had was quadratic on these (docs/performance.md).
    const line = `DCGM_FI_DEV_GPU_UTIL{UUID="GPU-1"} ${'1'.repeat(60_000)}\n`;
    let errors: string[] = [];
    const ms = time(() => {
      errors = parseExposition(line.repeat(100)).errors.map((e) => e.message);
    });
    expect(errors).toHaveLength(100);
    expect(errors[0]).toMatch(/^value "1{40}" is out of range$/);
    expect(ms).toBeLessThan(500);
  });

  it('reads a line arriving a character at a time in time linear in its length', () => {
    const feed = (length: number) => {
      const parser = new ExpositionParser({ maxLineLength: 1 << 20, onSample: () => undefined });
      const text = `m{UUID="GPU-1",l="${'x'.repeat(length)}"} 1\n`;
      return time(() => {
        for (let i = 0; i < text.length; i++) parser.push(text[i] as string);
        parser.end();
      });
    };
    feed(10_000); // warm up
    const small = Math.min(feed(20_000), feed(20_000));
    const large = Math.min(feed(200_000), feed(200_000));
    expect(large).toBeLessThan(2_000);
    expect(large / Math.max(small, 1)).toBeLessThan(30);
  });

  it('stops reading labels at the limit, however many a sample has', () => {
    const labels = Array.from({ length: 20_000 }, (_, i) => `l${i}="v"`).join(',');
    const messages: string[] = [];
    const parser = new ExpositionParser({
      maxLineLength: 1 << 20,
      maxLabels: 100,
      onSample: () => undefined,
      onError: (e) => messages.push(e.message),
    });
    const ms = time(() => {
      for (let i = 0; i < 20; i++) parser.push(`m{${labels}} 1\n`);
    });
    expect(messages).toEqual(Array(20).fill('more than 100 labels'));
    expect(ms).toBeLessThan(500);
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
