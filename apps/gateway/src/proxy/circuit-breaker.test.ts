import { CircuitBreaker } from './circuit-breaker';

describe('CircuitBreaker', () => {
  let now = 0;
  const changes: string[] = [];
  const breaker = () =>
    new CircuitBreaker(
      3,
      10_000,
      () => now,
      (state) => changes.push(state),
    );

  it('opens after consecutive failures, half-opens for one probe after the cooldown, and closes on success', () => {
    const b = breaker();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
    now += 4_000;
    expect(b.retryAfterSeconds()).toBe(6);
    now += 6_000;
    expect(b.tryAcquire()).toBe(true);
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(false); // one probe at a time
    b.success();
    expect(b.state).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('lets another request probe when the probe has not answered within a second (a long-poll), and closes on either success', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    now += 10_000;
    expect(b.tryAcquire()).toBe(true); // a lease that waits up to a minute for messages
    now += 999;
    expect(b.tryAcquire()).toBe(false);
    now += 1;
    expect(b.tryAcquire()).toBe(true); // an ack, answered at once
    expect(b.tryAcquire()).toBe(false);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
  });

  it('opens again at once when the probe fails', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    now += 10_000;
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
  });
});
