import { newTraceparent } from './trace-ids';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

describe('newTraceparent', () => {
  it('makes valid, sampled W3C traceparents with distinct non-zero ids, across pool refills', () => {
    // 1,000 headers use 24 KB of randomness: the 4 KB pool is refilled several times.
    const headers = Array.from({ length: 1_000 }, () => newTraceparent());
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    for (const header of headers) {
      const match = TRACEPARENT.exec(header);
      expect(match).not.toBeNull();
      const [, traceId, spanId] = match as RegExpExecArray;
      expect(traceId).not.toMatch(/^0+$/);
      expect(spanId).not.toMatch(/^0+$/);
      traceIds.add(traceId as string);
      spanIds.add(spanId as string);
    }
    expect(traceIds.size).toBe(1_000);
    expect(spanIds.size).toBe(1_000);
  });

  it('draws its ids evenly: every hex digit shows up at about its share', () => {
    const digits = new Map<string, number>();
    for (let i = 0; i < 2_000; i++) {
      const [, traceId] = TRACEPARENT.exec(newTraceparent()) as RegExpExecArray;
      for (const digit of traceId as string) digits.set(digit, (digits.get(digit) ?? 0) + 1);
    }
    // 64,000 digits: each of the 16 expected 4,000 times; 10% off would be over 12 standard deviations.
    expect(digits.size).toBe(16);
    for (const count of digits.values()) expect(Math.abs(count - 4_000)).toBeLessThan(400);
  });
});
