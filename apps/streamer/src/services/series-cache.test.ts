import { SeriesCache } from './series-cache';

describe('SeriesCache', () => {
  it('forgets every id once they are maxAge old (checked once per batch), so each is resolved (and refreshed) again', () => {
    let now = 1_000;
    const cache = new SeriesCache(10, 6 * 3_600_000, () => now);
    cache.set('a', 1);
    now += 6 * 3_600_000 - 1;
    cache.expireIfOld();
    expect(cache.get('a')).toBe(1);
    now += 1;
    cache.expireIfOld();
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 2);
    expect(cache.get('a')).toBe(2);
  });

  it('does not keep an id resolved before it started over', () => {
    let now = 0;
    const cache = new SeriesCache(10, 1_000, () => now);
    const generation = cache.generation;
    now = 1_000;
    cache.expireIfOld(); // another batch starts it over while a resolution is under way
    expect(cache.get('other')).toBeUndefined();
    cache.set('a', 1, generation);
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 2, cache.generation);
    expect(cache.get('a')).toBe(2);
  });

  it('starts over past maxEntries rather than grow', () => {
    const cache = new SeriesCache(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    expect(cache.size).toBe(1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')).toBe(3);
  });

  it('starts over past maxKeyChars of keys, however few: series with long label sets cannot hold gigabytes', () => {
    const cache = new SeriesCache(1_000, 6 * 3_600_000, Date.now, 100);
    const key = (c: string) => c.repeat(40);
    cache.set(key('a'), 1);
    cache.set(key('b'), 2);
    cache.set(key('a'), 1); // already held: counted once
    const generation = cache.generation;
    cache.set(key('c'), 3); // 120 characters would pass 100
    expect(cache.generation).toBe(generation + 1);
    expect(cache.size).toBe(1);
    expect(cache.get(key('a'))).toBeUndefined();
    expect(cache.get(key('c'))).toBe(3);
    cache.set(key('d'), 4);
    expect(cache.size).toBe(2);
  });
});
