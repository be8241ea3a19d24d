import fc from 'fast-check';
import { goDate, goDaysInMonth, goInt64 } from './go-time';

describe("Go's calendar", () => {
  it('is the calendar of a JavaScript Date wherever a Date holds the time, its year and its next month', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e12 + 400 * 86_400, max: 8.64e12 - 400 * 86_400 }), (sec) => {
        const js = new Date(sec * 1000);
        const go = goDate(BigInt(sec));
        expect([go.year, go.month, go.day, go.hour, go.minute, go.weekday]).toEqual([
          js.getUTCFullYear(),
          js.getUTCMonth() + 1,
          js.getUTCDate(),
          js.getUTCHours(),
          js.getUTCMinutes(),
          js.getUTCDay(),
        ]);
        expect(go.dayOfYear).toBe(
          (Date.UTC(js.getUTCFullYear(), js.getUTCMonth(), js.getUTCDate()) -
            Date.UTC(js.getUTCFullYear(), 0, 1)) /
            86_400_000 +
            1,
        );
        expect(goDaysInMonth(go)).toBe(
          new Date(Date.UTC(js.getUTCFullYear(), js.getUTCMonth() + 1, 0)).getUTCDate(),
        );
      }),
      { numRuns: 5000 },
    );
  });

  it('converts as amd64 does: NaN, infinities and what does not fit are the smallest int64', () => {
    for (const v of [NaN, Infinity, -Infinity, 2 ** 63, -(2 ** 64)]) expect(goInt64(v)).toBe(-(2n ** 63n));
    expect(goInt64(-(2 ** 63))).toBe(-(2n ** 63n));
    expect(goInt64(-1.9)).toBe(-1n);
    expect(goInt64(1e17 + 0.5)).toBe(100000000000000000n);
  });

  // What Prometheus 2.42 answers for these (queried at time 1000).
  it.each([
    ['hour', NaN, 15],
    ['minute', Infinity, 30],
    ['year', -Infinity, 292277026596],
    ['day_of_week', 1e19, 0],
    ['month', -1e19, 12],
    ['days_in_month', NaN, 31],
    ['day_of_year', NaN, 339],
    ['day_of_month', NaN, 4],
    ['year', 1e17, 3168875820],
    ['hour', -1e15, 22],
  ] as const)('%s(%s) is %s, as in Prometheus', (fn, v, want) => {
    const d = goDate(goInt64(v));
    const got = {
      hour: d.hour,
      minute: d.minute,
      year: d.year,
      day_of_week: d.weekday,
      month: d.month,
      days_in_month: goDaysInMonth(d),
      day_of_year: d.dayOfYear,
      day_of_month: d.day,
    }[fn];
    expect(got).toBe(want);
  });
});
