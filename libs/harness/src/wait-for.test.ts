import { waitFor } from './wait-for';

describe('waitFor', () => {
  it('resolves with the time waited once the condition holds, checking first without waiting', async () => {
    expect(await waitFor('at once', () => true)).toBeLessThan(50);
    let checks = 0;
    const waited = await waitFor('the third check', () => ++checks === 3, { intervalMs: 30 });
    expect(checks).toBe(3);
    expect(waited).toBeGreaterThanOrEqual(55);
  });

  it('counts a check that throws as not yet, and quotes its error when time runs out', async () => {
    let checks = 0;
    await waitFor('a recovery', async () => {
      if (++checks < 3) throw new Error('connection refused');
      return true;
    });
    expect(checks).toBe(3);
    await expect(
      waitFor(
        'the service',
        () => {
          throw new Error('connection refused');
        },
        { timeoutMs: 100, intervalMs: 20 },
      ),
    ).rejects.toThrow('timed out after 100 ms waiting for the service (last check: connection refused)');
  });

  it('quotes no stale error when the last check simply did not hold', async () => {
    let checks = 0;
    const error = await waitFor(
      'the flag',
      () => {
        if (++checks === 1) throw new Error('early failure');
        return false;
      },
      { timeoutMs: 100, intervalMs: 20 },
    ).catch((e: Error) => e);
    expect((error as Error).message).toBe('timed out after 100 ms waiting for the flag');
  });

  it('stops at once with the reason when its signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('the process exited')), 50);
    const started = Date.now();
    await expect(
      waitFor('never', () => false, { timeoutMs: 10_000, intervalMs: 10, signal: controller.signal }),
    ).rejects.toThrow('the process exited');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
