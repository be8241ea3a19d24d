import { channel } from 'node:diagnostics_channel';
import {
  type Lease,
  type LeaseRequest,
  type MessageInput,
  type Problem,
  type PublishResult,
  type TopicStats,
  toStorable,
} from '@gpu-telemetry/model';
import { context, propagation } from '@opentelemetry/api';
import { type Dispatcher, Pool } from 'undici';

/**
 * Where an undici instrumentation (OpenTelemetry's, in the services) hears of each request and adds
 * the trace context of the client span it starts: with a listener there, the client leaves the
 * headers to it, as a second `traceparent` would make the queue read neither.
 */
const undiciRequests = channel('undici:request:create');

export interface QueueClientOptions {
  /** Base URL of the queue service, e.g. http://queue:8081 */
  url: string;
  /** Keep-alive connections in the pool. */
  connections?: number;
  /** Time to wait for response headers on calls other than long-polls. */
  timeoutMs?: number;
  /** The service credential, sent as `Authorization: Bearer <token>` on every call. */
  token?: string;
  /** Sent on every request (e.g. an API key when going through the gateway). */
  headers?: Record<string, string>;
}

/** A non-2xx answer from the queue, with its problem details. */
export class QueueRequestError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem>,
    readonly operation: string,
  ) {
    super(`${operation}: ${status} ${problem.detail ?? problem.title ?? 'request failed'}`);
    this.name = 'QueueRequestError';
  }

  /** The lease was lost (expired and re-leased, or already settled). */
  get isConflict(): boolean {
    return this.status === 409;
  }

  /**
   * A publish refused for what its messages hold (400 invalid, 413 too large, 422 unprocessable):
   * sending them again cannot help. Any other refusal is about the publisher or the moment (a
   * credential being rotated, a wrong address, the topic limit, a rate limit), worth waiting out.
   */
  get refusesTheMessages(): boolean {
    return this.status === 400 || this.status === 413 || this.status === 422;
  }

  /** Worth retrying: the queue or its database is briefly unavailable. */
  get isRetryable(): boolean {
    return this.status >= 500 || this.status === 429;
  }
}

/** Typed HTTP client for the queue service, on one undici keep-alive pool. */
export class QueueClient {
  private readonly pool: Pool;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  /** The configured headers carry a trace context of their own. */
  private readonly traced: boolean;

  constructor(options: QueueClientOptions) {
    const url = new URL(options.url);
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? 16,
      // Shorter than the server's 65 s keep-alive, so we never reuse a socket it is closing.
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.headers = {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    };
    this.traced = Object.keys(this.headers).some((name) => name.toLowerCase() === 'traceparent');
  }

  publish(topic: string, messages: MessageInput[]): Promise<PublishResult> {
    return this.call('publish', 'POST', `/v1/topics/${encodeURIComponent(topic)}/messages`, { messages });
  }

  /**
   * Publishes messages already serialised, each `{"id": ..., "payload": ...}` as JSON text, so a
   * producer that built them once does not pay for serialising them again.
   */
  publishSerialized(topic: string, messages: string[], signal?: AbortSignal): Promise<PublishResult> {
    return this.call('publish', 'POST', `/v1/topics/${encodeURIComponent(topic)}/messages`, undefined, {
      rawBody: `{"messages":[${messages.join(',')}]}`,
      signal,
    });
  }

  /** Long-polls when `waitSeconds` > 0; an aborted signal ends the wait (the server releases anything it leased). */
  lease<T = unknown>(topic: string, request: LeaseRequest, signal?: AbortSignal): Promise<Lease<T>> {
    const wait = (request.waitSeconds ?? 0) * 1000;
    return this.call('lease', 'POST', `/v1/topics/${encodeURIComponent(topic)}/leases`, request, {
      signal,
      timeoutMs: wait + this.timeoutMs,
    });
  }

  ack(topic: string, leaseId: string, ids?: string[]): Promise<{ acked: number }> {
    return this.call('ack', 'POST', `/v1/topics/${encodeURIComponent(topic)}/acks`, { leaseId, ids });
  }

  nack(
    topic: string,
    leaseId: string,
    options: { ids?: string[]; delaySeconds?: number; reason?: string; deadLetter?: boolean } = {},
  ): Promise<{ nacked: number; dead: number }> {
    return this.call('nack', 'POST', `/v1/topics/${encodeURIComponent(topic)}/nacks`, {
      leaseId,
      ...options,
      // The queue takes at most MAX_NACK_REASON characters of storable text: a reason naming a
      // long or odd field of a bad message (one with a NUL) must not turn the nack, and the
      // dead-lettering, into a 400.
      ...(options.reason === undefined
        ? {}
        : { reason: shortened(toStorable(options.reason), MAX_NACK_REASON) }),
    });
  }

  extend(
    topic: string,
    leaseId: string,
    visibilitySeconds: number,
  ): Promise<{ leaseId: string; leaseUntil: string }> {
    return this.call('extend', 'POST', `/v1/topics/${encodeURIComponent(topic)}/leases/${leaseId}/extend`, {
      visibilitySeconds,
    });
  }

  release(topic: string, leaseId: string): Promise<{ released: number }> {
    return this.call(
      'release',
      'POST',
      `/v1/topics/${encodeURIComponent(topic)}/leases/${leaseId}/release`,
      {},
    );
  }

  topic(topic: string): Promise<TopicStats> {
    return this.call('topic', 'GET', `/v1/topics/${encodeURIComponent(topic)}`);
  }

  /**
   * Resolves when the queue answers /readyz with 200 and accepts this client's credential (a
   * service whose SERVICE_TOKEN differs from the queue's is not ready: every call would be a 401).
   */
  async ready(): Promise<void> {
    // The signal also bounds the wait for a free connection when every one is stuck.
    await this.call('readyz', 'GET', '/readyz', undefined, {
      timeoutMs: 2_000,
      signal: AbortSignal.timeout(2_000),
    });
    const res = await this.pool.request({
      method: 'HEAD',
      path: '/openapi.json',
      headers: this.requestHeaders(),
      headersTimeout: 2_000,
      signal: AbortSignal.timeout(2_000),
    });
    await res.body.dump();
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new QueueRequestError(
        res.statusCode,
        { detail: 'the queue refuses this service’s credential: check SERVICE_TOKEN' },
        'credential check',
      );
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /**
   * The headers of one request: the configured ones, and the caller's trace context (W3C
   * `traceparent`, `tracestate`) where a span is active, so that the queue links the messages a
   * publisher sends to its trace without an undici instrumentation. With no OpenTelemetry SDK
   * registered, or no span active, there is nothing to add.
   */
  private requestHeaders(): Record<string, string> {
    if (this.traced || undiciRequests.hasSubscribers) return this.headers;
    const trace: Record<string, string> = {};
    propagation.inject(context.active(), trace);
    return Object.keys(trace).length === 0 ? this.headers : { ...trace, ...this.headers };
  }

  private async call<T>(
    operation: string,
    method: Dispatcher.HttpMethod,
    path: string,
    body?: unknown,
    options: { signal?: AbortSignal; timeoutMs?: number; rawBody?: string } = {},
  ): Promise<T> {
    const timeout = options.timeoutMs ?? this.timeoutMs;
    const res = await this.pool.request({
      method,
      path,
      headers: this.requestHeaders(),
      body: options.rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
      signal: options.signal,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return JSON.parse(text) as T;
    let problem: Partial<Problem> = {};
    try {
      problem = JSON.parse(text) as Partial<Problem>;
    } catch {
      problem = { detail: text.slice(0, 200) };
    }
    throw new QueueRequestError(res.statusCode, problem, operation);
  }
}

/** The longest nack reason the queue takes (the nack schema's limit). */
export const MAX_NACK_REASON = 2000;

/** `text` cut to `max` characters, ending in an ellipsis when cut, never between a surrogate pair. */
function shortened(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}
