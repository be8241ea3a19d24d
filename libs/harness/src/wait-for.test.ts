import { waitFor } from './wait-for';

describe('waitFor', () => {
  it('resolves once the condition holds, counting a throwing check as not yet', async () => {
    let calls = 0;
    const waited = await waitFor(
      'the third check',
      () => {
        calls++;
        if (calls === 1) throw new Error('connection refused');
        return calls >= 3;
      },
      { intervalMs: 5 },
    );
    expect(calls).toBe(3);
    expect(waited).toBeGreaterThanOrEqual(5);
  });

  it('says what it waited for, and the last error, when time runs out', async () => {
    await expect(
      waitFor(
        'the queue',
        () => {
          throw new Error('ECONNREFUSED');
        },
        { timeoutMs: 30, intervalMs: 5 },
      ),
    ).rejects.toThrow('timed out after 30 ms waiting for the queue (last check: ECONNREFUSED)');
  });

  it('refuses a bare number where the options belong, instead of waiting the default', async () => {
    await expect(waitFor('a chunk', () => false, 90_000 as unknown as { timeoutMs: number })).rejects.toThrow(
      'waitFor("a chunk"): pass options as { timeoutMs, intervalMs }',
    );
  });
});
