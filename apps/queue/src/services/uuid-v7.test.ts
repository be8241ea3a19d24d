import { uuidv7, uuidv7Time } from './uuid-v7';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv7', () => {
  it('has the version 7 layout and carries the current time', () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    expect(id).toMatch(V7);
    expect(uuidv7Time(id)).toBeGreaterThanOrEqual(before);
    expect(uuidv7Time(id)).toBeLessThanOrEqual(after + 1);
  });

  it('is strictly increasing and unique in a tight loop', () => {
    const ids = Array.from({ length: 50_000 }, () => uuidv7());
    for (let i = 1; i < ids.length; i++) {
      if (!((ids[i] as string) > (ids[i - 1] as string))) {
        throw new Error(`id ${i} ${ids[i]} does not sort after ${ids[i - 1]}`);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => V7.test(id))).toBe(true);
  });

  it('borrows the next millisecond when one millisecond runs out of counter values', () => {
    const frozen = Date.now() + 60_000; // ahead of anything generated so far
    const ids = Array.from({ length: 10_000 }, () => uuidv7(frozen));
    expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] as string))).toBe(true);
    expect(uuidv7Time(ids[0] as string)).toBe(frozen);
    // 10,000 ids need at least 10,000 / 4096 > 2 milliseconds' worth of counter values.
    expect(uuidv7Time(ids[ids.length - 1] as string)).toBeGreaterThan(frozen + 1);
    // A clock that steps back does not break the order either.
    expect(uuidv7(frozen - 5_000) > (ids[ids.length - 1] as string)).toBe(true);
  });

  it('spreads its random bits: no two ids share their random tail', () => {
    const tails = new Set(Array.from({ length: 10_000 }, () => uuidv7().slice(19)));
    expect(tails.size).toBe(10_000);
  });
});
