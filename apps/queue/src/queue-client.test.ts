import { waitFor } from '@gpu-telemetry/harness';
import { createLogger, serviceAuthorization } from '@gpu-telemetry/service-kit';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import {
  type ConsumerOptions,
  createConsumer,
  QueueClient,
  QueueRequestError,
} from '@gpu-telemetry/queue-client';
import { serveQueue, startQueueTestApp, type QueueTestApp } from './testing/queue-test-app';

/** libs/queue-client against the real queue service over HTTP. */
let queue: QueueTestApp;
let server: Awaited<ReturnType<typeof serveQueue>>;
let client: QueueClient;
const logger = createLogger('consumer-test', 'silent');

beforeAll(async () => {
  queue = await startQueueTestApp();
  server = await serveQueue(queue);
  client = new QueueClient({ url: server.url, token: TEST_SERVICE_TOKEN });
});

afterAll(async () => {
  await client.close();
  await server.close();
  await queue.close();
});

describe('QueueClient', () => {
  it('publishes, leases, acks and reads topic stats', async () => {
    const published = await client.publish('client-basic', [{ payload: { a: 1 } }, { payload: { a: 2 } }]);
    expect(published.accepted).toBe(2);
    const lease = await client.lease<{ a: number }>('client-basic', { consumer: 'c', max: 10 });
    expect(lease.messages.map((m) => m.payload.a)).toEqual([1, 2]);
    expect(await client.ack('client-basic', lease.leaseId as string)).toEqual({ acked: 2 });
    expect(await client.topic('client-basic')).toMatchObject({ ready: 0, inFlight: 0 });
  });

  it('throws QueueRequestError with the problem details on 4xx', async () => {
    const error = await client
      .ack('client-basic', '00000000-0000-4000-8000-000000000000')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueRequestError);
    expect((error as QueueRequestError).isConflict).toBe(true);
    const bad = await client.lease('Bad Topic', { consumer: 'c' }).catch((e: unknown) => e);
    expect((bad as QueueRequestError).status).toBe(400);
    expect((bad as QueueRequestError).problem.errors?.[0]?.field).toBe('topic');
  });
});

describe('createConsumer', () => {
  it('acks what the handler processed and nacks what it reports as failed, with the reason', async () => {
    const topic = 'consumer-mixed';
    await queue.queue.configure(topic, 1);
    await client.publish(
      topic,
      Array.from({ length: 50 }, (_, n) => ({ payload: { n } })),
    );
    const handled: number[] = [];
    const consumer = createConsumer<{ n: number }>({
      client,
      topic,
      consumer: 'test',
      concurrency: 3,
      batch: 7,
      visibilitySeconds: 30,
      waitSeconds: 1,
      logger,
      handle: async (messages) => {
        handled.push(...messages.map((m) => m.payload.n));
        return {
          failed: messages
            .filter((m) => m.payload.n % 10 === 0)
            .map((m) => ({ id: m.id, reason: `n=${m.payload.n} is bad` })),
        };
      },
    });
    consumer.start();
    // The batches holding the five bad ones may settle before the last good batch is handled.
    await waitFor(
      '50 handled and 5 dead',
      async () => handled.length === 50 && (await client.topic(topic)).dead === 5,
      {
        timeoutMs: 10_000,
      },
    );
    await consumer.stop();
    expect(handled.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, n) => n));
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 5 });
    const dead = (await fetch(`${server.url}/v1/topics/${topic}/dead`, {
      headers: { authorization: serviceAuthorization(TEST_SERVICE_TOKEN) },
    }).then((r) => r.json())) as {
      messages: { lastError: string }[];
    };
    expect(dead.messages.map((m) => m.lastError).sort()).toEqual([
      'n=0 is bad',
      'n=10 is bad',
      'n=20 is bad',
      'n=30 is bad',
      'n=40 is bad',
    ]);
  });

  /** A consumer of one loop, ten messages a lease, with these options. */
  const consumerOf = <T>(
    topic: string,
    options: Pick<ConsumerOptions<T>, 'handle'> & Partial<ConsumerOptions<T>>,
  ) =>
    createConsumer<T>({
      client,
      topic,
      consumer: 'test',
      concurrency: 1,
      batch: 10,
      visibilitySeconds: 30,
      waitSeconds: 1,
      logger,
      ...options,
    });

  /** Publishes one message, fails it with `reason` (dead-lettered), and reads back its last error. */
  async function deadLetteredWith(topic: string, reason: string): Promise<string[]> {
    await queue.queue.configure(topic, 1);
    await client.publish(topic, [{ payload: { n: 1 } }]);
    const consumer = consumerOf<{ n: number }>(topic, {
      handle: async (messages) => ({ failed: messages.map((m) => ({ id: m.id, reason })) }),
    });
    consumer.start();
    try {
      await waitFor('dead', async () => (await client.topic(topic)).dead === 1, { timeoutMs: 5_000 });
    } finally {
      await consumer.stop();
    }
    const dead = (await fetch(`${server.url}/v1/topics/${topic}/dead`, {
      headers: { authorization: serviceAuthorization(TEST_SERVICE_TOKEN) },
    }).then((r) => r.json())) as { messages: { lastError: string }[] };
    return dead.messages.map((m) => m.lastError);
  }

  it('dead-letters a message whose failure reason is longer than the queue takes, with the reason cut', async () => {
    const [lastError] = await deadLetteredWith(
      'consumer-long-reason',
      `field ${'x'.repeat(3_000)} is not known`,
    );
    expect(lastError).toHaveLength(2_000);
    expect(lastError).toMatch(/^field x+…$/);
  });

  it('dead-letters a message whose failure reason holds a NUL (a field named by a bad payload), with U+FFFD in its place', async () => {
    expect(await deadLetteredWith('consumer-nul-reason', 'labels.a\u0000b\ud800: bad')).toEqual([
      'labels.a\ufffdb\ufffd: bad',
    ]);
  });

  it('gives a batch that failed for its dependency back untouched, backs off, and never dead-letters it for that', async () => {
    const topic = 'consumer-outage';
    await queue.queue.configure(topic, 2); // two attempts: two nacks would kill the message
    await client.publish(topic, [{ payload: { n: 1 } }, { payload: { n: 2 } }]);
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const tries: number[] = [];
    const stored: number[] = [];
    const consumer = consumerOf<{ n: number }>(topic, {
      isTransient: (error) => (error as { code?: string }).code === 'ECONNREFUSED',
      handle: async (messages) => {
        tries.push(Date.now());
        // The database is down for the first four tries.
        if (tries.length <= 4) throw down;
        stored.push(...messages.map((m) => m.payload.n));
      },
    });
    consumer.start();
    try {
      await waitFor('stored', async () => stored.length === 2, { timeoutMs: 15_000 });
    } finally {
      await consumer.stop();
    }
    expect(stored.sort()).toEqual([1, 2]);
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 0 });
    // Backing off: 0.5 s, 1 s, 2 s, 4 s between the tries (at least, less a little timer slack).
    const gaps = tries.slice(1).map((t, i) => t - (tries[i] as number));
    expect(gaps.slice(0, 4).map((gap, i) => gap >= 500 * 2 ** i - 50)).toEqual([true, true, true, true]);
  });

  it('still nacks a batch whose handler failed for any other reason, spending an attempt', async () => {
    const topic = 'consumer-bug';
    await queue.queue.configure(topic, 1);
    await client.publish(topic, [{ payload: { n: 1 } }]);
    const consumer = consumerOf<{ n: number }>(topic, {
      isTransient: () => false,
      handle: async () => {
        throw new Error('cannot read properties of undefined');
      },
    });
    consumer.start();
    try {
      await waitFor('dead', async () => (await client.topic(topic)).dead === 1, { timeoutMs: 5_000 });
    } finally {
      await consumer.stop();
    }
  });

  it('pauses between empty leases that come back at once, instead of spinning', async () => {
    const topic = 'consumer-no-wait';
    let leases = 0;
    const counting = new Proxy(client, {
      get(target, key, receiver) {
        if (key === 'lease') {
          return (...args: Parameters<QueueClient['lease']>) => {
            leases++;
            return target.lease(...args);
          };
        }
        return Reflect.get(target, key, receiver);
      },
    });
    const consumer = createConsumer({
      client: counting,
      topic,
      consumer: 'test',
      concurrency: 1,
      batch: 10,
      visibilitySeconds: 30,
      waitSeconds: 0,
      logger,
      handle: async () => undefined,
    });
    consumer.start();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await consumer.stop();
    // A pause of 250 ms after each: about four in a second, not hundreds.
    expect(leases).toBeGreaterThanOrEqual(2);
    expect(leases).toBeLessThanOrEqual(6);
  });

  it('extends the lease while a slow batch runs, so it is not redelivered', async () => {
    const topic = 'consumer-slow';
    await client.publish(topic, [{ payload: 'slow' }]);
    let deliveries = 0;
    const consumer = createConsumer({
      client,
      topic,
      consumer: 'slow',
      concurrency: 2,
      batch: 1,
      visibilitySeconds: 1,
      maxHandleSeconds: Infinity, // no limit (a timer that long would fire at once)
      waitSeconds: 1,
      logger,
      handle: async () => {
        deliveries++;
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      },
    });
    consumer.start();
    await waitFor(
      'the lease released',
      async () => (await client.topic(topic)).inFlight === 0 && deliveries > 0,
      {
        timeoutMs: 10_000,
      },
    );
    await consumer.stop();
    expect(deliveries).toBe(1);
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 0 });
  });

  it('lets the lease of a batch running past its limit run out, leases on, and dead-letters its messages when offered them again', async () => {
    const topic = 'consumer-hung';
    await client.publish(topic, [{ payload: 'hung' }]);
    const handled: string[] = [];
    let overruns = 0;
    let unblock!: () => void;
    const hung = new Promise<void>((resolve) => (unblock = resolve));
    const consumer = createConsumer<string>({
      client,
      topic,
      consumer: 'hung',
      concurrency: 1, // one loop: only leasing on past the hung batch lets anything else through
      batch: 1,
      visibilitySeconds: 1,
      maxHandleSeconds: 2,
      waitSeconds: 1,
      logger,
      onOverrun: () => overruns++,
      // 'hung' hangs (every time it is handled) until released; the rest are handled at once.
      handle: async (messages) => {
        for (const m of messages) if (m.payload === 'hung') await hung;
        handled.push(...messages.map((m) => m.payload));
      },
    });
    consumer.start();
    let stoppedIn = Infinity;
    try {
      await waitFor('the hung message dead-lettered', async () => (await client.topic(topic)).dead === 1, {
        timeoutMs: 10_000,
      });
      await client.publish(topic, [{ payload: 'later' }]);
      await waitFor('the later message handled', async () => handled.includes('later'), {
        timeoutMs: 10_000,
      });
    } finally {
      const stopAt = Date.now();
      await consumer.stop(); // not held up by the batch it gave up on
      stoppedIn = Date.now() - stopAt;
      unblock();
    }
    expect(stoppedIn).toBeLessThan(3_000);
    expect(overruns).toBe(1);
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 1 });
    const dead = (await fetch(`${server.url}/v1/topics/${topic}/dead`, {
      headers: { authorization: serviceAuthorization(TEST_SERVICE_TOKEN) },
    }).then((r) => r.json())) as { messages: { payload: string; lastError: string }[] };
    expect(dead.messages.map((m) => m.payload)).toEqual(['hung']);
    expect(dead.messages[0]?.lastError).toContain('its handling ran past 2s on an earlier delivery');
  });

  it('aborts the signal of a batch running past its limit, and dead-letters at once the messages of a handler that stops on it', async () => {
    const topic = 'consumer-stopped';
    await client.publish(topic, [{ payload: 'hangs' }, { payload: 'hangs too' }]);
    const signals: AbortSignal[] = [];
    let overruns = 0;
    const consumer = createConsumer<string>({
      client,
      topic,
      consumer: 'stopped',
      concurrency: 1,
      batch: 2,
      visibilitySeconds: 1,
      maxHandleSeconds: 1,
      waitSeconds: 1,
      logger,
      onOverrun: () => overruns++,
      // Waits on something that never comes, as a statement blocked on a lock, until stopped.
      handle: (_messages, signal) => {
        signals.push(signal);
        return new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
        );
      },
    });
    consumer.start();
    const started = Date.now();
    try {
      await waitFor('both messages dead-lettered', async () => (await client.topic(topic)).dead === 2, {
        timeoutMs: 10_000,
      });
    } finally {
      await consumer.stop();
    }
    // At the limit (1 s), not after the lease ran out and the messages came again.
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
    expect(String(signals[0]?.reason)).toContain('handling ran past 1s');
    expect(overruns).toBe(1);
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 2 });
    const dead = (await fetch(`${server.url}/v1/topics/${topic}/dead`, {
      headers: { authorization: serviceAuthorization(TEST_SERVICE_TOKEN) },
    }).then((r) => r.json())) as { messages: { payload: string; lastError: string; attempts: number }[] };
    expect(dead.messages.map((m) => m.payload).sort()).toEqual(['hangs', 'hangs too']);
    for (const m of dead.messages) {
      expect(m.lastError).toContain('its handling ran past 1s and was stopped');
      expect(m.attempts).toBe(1);
    }
  });

  it('on stop, finishes the batch in hand and stops waiting at once', async () => {
    const topic = 'consumer-stop';
    await client.publish(topic, [{ payload: 1 }]);
    let finished = false;
    let started!: () => void;
    const inHand = new Promise<void>((resolve) => (started = resolve));
    const consumer = createConsumer({
      client,
      topic,
      consumer: 'stopper',
      concurrency: 2,
      batch: 10,
      visibilitySeconds: 30,
      waitSeconds: 20,
      logger,
      handle: async () => {
        started();
        await new Promise((resolve) => setTimeout(resolve, 500));
        finished = true;
      },
    });
    consumer.start();
    await inHand;
    const stopAt = Date.now();
    await consumer.stop();
    expect(finished).toBe(true);
    expect(Date.now() - stopAt).toBeLessThan(2_000);
    expect(await client.topic(topic)).toMatchObject({ ready: 0, inFlight: 0 });
  });
});
