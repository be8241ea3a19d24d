import { randomUUID } from 'node:crypto';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import request from 'supertest';
import { insertMessages } from '../services/queue.queries';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

let queue: QueueTestApp;
let recording: ReturnType<typeof recordSpans>;

beforeAll(async () => {
  recording = recordSpans();
  queue = await startQueueTestApp();
});

afterAll(async () => {
  await queue.close();
  await recording.stop();
});

const api = () => request(asService(queue.app));
const topicName = () => `trace-${randomUUID().slice(0, 8)}`;

interface Leased {
  id: string;
  payload: unknown;
  traceparent?: string;
}

async function leaseAll(topic: string): Promise<{ leaseId: string; messages: Leased[] }> {
  const res = await api()
    .post(`/v1/topics/${topic}/leases`)
    .send({ consumer: 'test', max: 10, visibilitySeconds: 30 })
    .expect(200);
  return res.body as { leaseId: string; messages: Leased[] };
}

describe('the trace context of a publish', () => {
  it('is kept with each message and given with it on every lease, and with its dead letter', async () => {
    const topic = topicName();
    recording.reset();
    await api()
      .post(`/v1/topics/${topic}/messages`)
      .send({ messages: [{ payload: 'a' }, { payload: 'b' }] })
      .expect(201);
    const publish = recording.spans().find((s) => s.name === 'queue.publish');
    expect(publish).toBeDefined();
    const { traceId, spanId } = publish!.spanContext();
    const expected = `00-${traceId}-${spanId}-01`;

    const first = await leaseAll(topic);
    expect(first.messages.map((m) => [m.payload, m.traceparent])).toEqual([
      ['a', expected],
      ['b', expected],
    ]);
    // Given back, leased again: the publish's context still, not the lease's.
    await api().post(`/v1/topics/${topic}/nacks`).send({ leaseId: first.leaseId }).expect(200);
    const again = await leaseAll(topic);
    expect(again.messages.map((m) => m.traceparent)).toEqual([expected, expected]);
    await api()
      .post(`/v1/topics/${topic}/nacks`)
      .send({ leaseId: again.leaseId, deadLetter: true, reason: 'refused' })
      .expect(200);
    const dead = await api().get(`/v1/topics/${topic}/dead`).expect(200);
    expect(dead.body.messages.map((m: Leased) => m.traceparent)).toEqual([expected, expected]);
  });

  it('is left out for a message stored without one', async () => {
    const topic = topicName();
    await api().post(`/v1/topics/${topic}/messages`).send({ payload: 'first' }).expect(201);
    await insertMessages(queue.database.pool, topic, [randomUUID()], [Buffer.from('"untraced"')], null);
    const { messages } = await leaseAll(topic);
    expect(messages.map((m) => m.payload)).toEqual(['first', 'untraced']);
    expect(messages[0]?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    expect(messages[1]).not.toHaveProperty('traceparent');
  });
});
