import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import {
  context,
  isSpanContextValid,
  propagation,
  type Span,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { FieldError } from '@gpu-telemetry/model';
import {
  type Logger,
  serviceAuthorization,
  stampAnswer,
  TRACEPARENT,
  writeProblem,
} from '@gpu-telemetry/service-kit';
import { type Dispatcher, Pool } from 'undici';
import { type Access, type ApiKeysService, AuthError, type Principal } from '../auth/api-keys.service';
import type { ClientAddressOf, ForwardingOf } from '../auth/client-address';
import { clientOf, type RateLimiter, takeToken } from '../auth/rate-limiter';
import { CircuitBreaker } from './circuit-breaker';
import type { RequestRecord } from '../records/requests.queries';
import type { GatewayMetrics } from './gateway.metrics';
import { SlotBudget } from './slot-budget';
import { newTraceparent } from './trace-ids';
import { startServerSpan } from '../traces/server-span';

/** The longest path passed on as X-Forwarded-Uri. */
const MAX_FORWARDED_PATH = 2048;

/** One instance of a backend: every route of the backend to it shares its pools and its breaker. */
export interface Upstream {
  /**
   * The instance as /metrics and the request records name it: its backend and its place in that
   * backend's GATEWAY_*_URLS, `queue-1`. Its origin, an internal address, goes to the logs only.
   */
  name: string;
  origin: string;
  pool: Pool;
  /**
   * Long-polls (a lease that waits for messages) on connections of their own: in the shared pool
   * they would hold its connections for up to a minute, and an ack or a publish behind them
   * would wait in its queue as long, past its lease's deadline.
   */
  longPolls: Pool;
  breaker: CircuitBreaker;
}

export interface ProxyRoute {
  name: string;
  /** Public path prefix, e.g. /api/v1/gpus */
  prefix: string;
  /** Upstream path prefix it maps to, e.g. /v1/gpus */
  target: string;
  upstreams: Upstream[];
  timeoutMs: number;
  /** What a request needs (scope, and topic on the queue), by method and path below the prefix. */
  access(method: string, path: string): Access;
  /**
   * Requests that may wait upstream for long (a lease's long-poll): they go by `longPolls`, and take
   * a slot of `budget` instead of one of the ordinary requests' (GATEWAY_MAX_CONCURRENCY).
   */
  longPoll?: { matches(method: string, path: string): boolean; budget: SlotBudget };
}

export interface ProxyOptions {
  routes: ProxyRoute[];
  keys: ApiKeysService;
  limiter: RateLimiter;
  auth: boolean;
  bodyLimit: number;
  /** Most requests in flight at once, long-polls apart (they have their route's budget). */
  maxConcurrency: number;
  /** Most of them one client (a key, or an address group when anonymous) may have in flight. */
  maxConcurrencyPerClient: number;
  logger: Logger;
  metrics: GatewayMetrics;
  /** Whom anonymous requests are rate limited as (with auth off). */
  clientAddress: ClientAddressOf;
  /** The hops a request came through, as X-Forwarded-For tells the upstream. */
  forwarding: ForwardingOf;
  /** Where each proxied request is recorded (off the response path). */
  recorder?: { record(entry: RequestRecord): void };
  /** The service credential, sent upstream in place of the client's own credentials. */
  serviceToken: string;
}

// Hop-by-hop headers (RFC 9110 7.6.1) never cross the proxy, in either direction; neither do the
// client's credentials, nor its Expect (answered here: undici refuses to send it).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'authorization', 'x-api-key', 'host', 'expect']);

/** Why a request was refused or cut short, for gateway_rejected_total. */
type RejectReason =
  | 'rate_limit'
  | SlotReason
  | 'circuit_open'
  | 'body_too_large'
  | 'client_closed'
  | 'unforwardable'
  | 'auth_unavailable'
  | 'malformed_path';

/** The two slot budgets a request may take one of. */
type SlotKind = 'concurrency' | 'long_polls';
type SlotReason = SlotKind | `${SlotKind}_per_client`;

/** How a refusal of each budget is worded (the client's share, and the whole). */
const SLOT_WORDS: Record<SlotKind, { held: string; full: string }> = {
  concurrency: { held: 'requests in flight', full: 'Too many requests in flight; retry shortly.' },
  long_polls: { held: 'long-polls waiting', full: 'Too many long-polls waiting; retry shortly.' },
};

class ProxyError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly reason?: RejectReason,
    readonly errors?: FieldError[],
  ) {
    super(message);
  }
}

/**
 * A path as RFC 3986 writes one: unreserved characters, percent escapes, sub-delimiters, `:`, `@`
 * and `/`. Node passes on a target with `#`, `\` or raw non-ASCII, and an upstream router may read
 * it otherwise than the gateway did (Express cuts a path at `#` and turns `\` into `/` before it),
 * so access would be decided for one path and the upstream would act on another.
 */
const PATH = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;

/**
 * A `.` or `..` segment, as written or percent-encoded (`%2e`, `%2E%2e`, `.%2e`): a router or proxy
 * upstream that resolves it would act on another path than the one access was decided for
 * (/api/v1/gpus/../../v1/keys). Dots within a segment (a topic `jobs.v1`, a GPU id) are no such.
 */
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?=\/|$)/i;

/**
 * Upstream faults: the upstream could not be reached, reset or timed out, or sent a broken
 * response. Only these (and 5xx answers) count toward its circuit breaker. Everything else that
 * makes a request fail (undici refusing a header or argument, the client leaving, a body over the
 * limit) is the request's own doing and must not let one client open the breaker for all.
 */
const UPSTREAM_FAULTS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const REQUEST_FAULTS = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_ABORTED',
]);
const CONNECTION_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'EPIPE',
]);

/** An undici or socket error code as a bounded metric label. */
function codeLabel(code: string): string {
  if (UPSTREAM_FAULTS.has(code) || REQUEST_FAULTS.has(code)) return code;
  return code.startsWith('HPE_') ? 'HPE' : 'other';
}

export function createUpstream(
  name: string,
  origin: string,
  options: {
    connectTimeoutMs: number;
    breakerFailures: number;
    breakerCooldownMs: number;
    /** The long-poll budget (GATEWAY_MAX_LONG_POLLS): no more can wait on one instance either. */
    maxLongPolls: number;
    metrics?: GatewayMetrics;
  },
): Upstream {
  const { connectTimeoutMs } = options;
  const states = { closed: 0, open: 1, 'half-open': 2 } as const;
  return {
    name,
    origin,
    breaker: new CircuitBreaker(options.breakerFailures, options.breakerCooldownMs, Date.now, (state) =>
      options.metrics?.breaker.set({ upstream: name }, states[state]),
    ),
    // Idle keep-alive shorter than the upstream's (65 s), so a reused socket is never one it closes.
    pool: new Pool(origin, {
      connections: 128,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connectTimeout: connectTimeoutMs,
    }),
    // A connection for each long-poll that may wait: the budget bounds them, so none queues here.
    longPolls: new Pool(origin, {
      connections: options.maxLongPolls,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connectTimeout: connectTimeoutMs,
    }),
  };
}

/** Headers named in Connection are hop-by-hop too. */
function stripped(
  headers: Record<string, string | string[] | undefined>,
  drop: Set<string>,
): Record<string, string | string[]> {
  const named = new Set(
    String(headers['connection'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || drop.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The lean proxy path: node:http in, undici out, bodies streamed both ways. Every request is
 * authenticated, rate limited, given a request id and trace context, and logged with its latency.
 */
export class Proxy {
  /** The ordinary requests' slots (GATEWAY_MAX_CONCURRENCY, and each client's share of them). */
  private readonly inFlight: SlotBudget;
  private readonly cursor = new Map<ProxyRoute, number>();
  private readonly upstreamAuthorization: string;

  constructor(private readonly options: ProxyOptions) {
    this.upstreamAuthorization = serviceAuthorization(options.serviceToken);
    this.inFlight = new SlotBudget(options.maxConcurrency, options.maxConcurrencyPerClient, (held) =>
      options.metrics.requestsInFlight.set(held),
    );
  }

  match(url: string | undefined): ProxyRoute | undefined {
    const path = (url ?? '/').split('?')[0] ?? '/';
    return this.options.routes.find((route) => path === route.prefix || path.startsWith(`${route.prefix}/`));
  }

  /**
   * One server span per proxied request, child of the caller's trace context; its context is what
   * the upstream receives. Without the SDK the span is a no-op and the context passes through.
   * `expectsContinue`: the client sent `Expect: 100-continue` and waits for the go-ahead, which it
   * gets once the request has passed the edge checks (a refused one gets its final answer instead
   * and never sends the body).
   */
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    route: ProxyRoute,
    expectsContinue = false,
  ): Promise<void> {
    const { span, context: spanContext } = startServerSpan(req, `${req.method} ${route.prefix}`, {
      'gateway.route': route.name,
    });
    return context.with(spanContext, () => this.proxy(req, res, route, span, expectsContinue));
  }

  private async proxy(
    req: IncomingMessage,
    res: ServerResponse,
    route: ProxyRoute,
    span: Span,
    expectsContinue: boolean,
  ): Promise<void> {
    const started = performance.now();
    // An upstream's own values win: writeHead copies its headers over these.
    const requestId = stampAnswer(req, res);
    let principal: Principal | undefined;
    let upstream: Upstream | undefined;
    let bytesIn = 0;
    let bytesOut = 0;
    let traceId: string | undefined;
    try {
      const rest = (req.url ?? '').slice(route.prefix.length);
      const restPath = rest.split('?')[0] ?? '';
      if (!PATH.test(restPath)) {
        throw new ProxyError(400, 'The path holds characters a URL path cannot.', {}, 'malformed_path', [
          {
            field: 'path',
            message: "must be made of RFC 3986 path characters (no '#', '\\', spaces or raw non-ASCII)",
          },
        ]);
      }
      if (DOT_SEGMENT.test(restPath)) {
        throw new ProxyError(400, "The path holds a '.' or '..' segment.", {}, 'malformed_path', [
          { field: 'path', message: "must have no '.' or '..' segment, written or percent-encoded ('%2e')" },
        ]);
      }
      principal = await this.authorize(req, route, rest);
      const client = clientOf(req, principal, this.options.clientAddress);
      this.limit(res, client);
      // Refused up front when it says so, and cut off as it streams when it did not.
      if (Number(req.headers['content-length'] ?? 0) > this.options.bodyLimit) throw this.tooLarge();
      const longPoll = route.longPoll?.matches(req.method ?? 'GET', rest) ? route.longPoll.budget : undefined;
      // Taken before the body is read: a body sent slowly holds its slot, and its client's share.
      const slots = longPoll ?? this.inFlight;
      this.takeSlot(slots, longPoll ? 'long_polls' : 'concurrency', client, requestId);
      if (expectsContinue) res.writeContinue();
      // A client that leaves before the answer ends the upstream request too: the upstream stops
      // working for nobody (a PromQL query is cancelled, a long-poll lease released).
      const left = new AbortController();
      const leave = () => left.abort();
      res.once('close', leave);
      try {
        const headers = this.forwardHeaders(req, requestId);
        traceId = isSpanContextValid(span.spanContext())
          ? span.spanContext().traceId
          : String(headers['traceparent'] ?? '').split('-')[1];
        const idempotent = req.method === 'GET' || req.method === 'HEAD';
        // Bodies are counted (and cut at the limit) as they stream through; GET and HEAD have none.
        const body = idempotent
          ? undefined
          : req.pipe(
              new Transform({
                transform: (chunk: Buffer, _encoding, callback) => {
                  bytesIn += chunk.length;
                  if (bytesIn > this.options.bodyLimit) callback(this.tooLarge());
                  else callback(null, chunk);
                },
              }),
            );
        // A client that leaves mid-body fails the upstream request as its own doing (pipe alone
        // would leave the upstream waiting for the rest until the timeout).
        if (body) {
          if (req.closed) this.clientGone(req, body);
          else req.once('close', () => this.clientGone(req, body));
        }
        let response: Dispatcher.ResponseData | undefined;
        for (let attempt = 0; !response; attempt++) {
          upstream = this.pick(route);
          try {
            const pool = longPoll ? upstream.longPolls : upstream.pool;
            response = await pool.request({
              method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
              path: route.target + rest,
              headers,
              body,
              headersTimeout: route.timeoutMs,
              bodyTimeout: route.timeoutMs,
              signal: left.signal,
            });
          } catch (error) {
            if (left.signal.aborted) {
              upstream.breaker.release();
              this.options.metrics.upstreamErrors.inc({
                route: route.name,
                fault: 'request',
                code: 'client_closed',
              });
              throw new ProxyError(
                499,
                'The client closed the connection before the answer.',
                {},
                'client_closed',
              );
            }
            // (A slow client body never times out here: undici starts the headers timeout once the
            // body is written; the server's request timeout bounds the client instead.)
            const code = error instanceof ProxyError ? '' : String((error as { code?: unknown }).code ?? '');
            if (!(UPSTREAM_FAULTS.has(code) || code.startsWith('HPE_'))) {
              upstream.breaker.release();
              this.options.metrics.upstreamErrors.inc({
                route: route.name,
                fault: 'request',
                code: error instanceof ProxyError ? 'refused' : codeLabel(code),
              });
              throw this.requestFault(error, code, route);
            }
            upstream.breaker.failure();
            this.options.metrics.upstreamErrors.inc({
              route: route.name,
              fault: 'upstream',
              code: codeLabel(code),
            });
            if (code === 'UND_ERR_HEADERS_TIMEOUT')
              throw new ProxyError(504, `${route.name} did not answer within ${route.timeoutMs} ms.`);
            const connectionFailure = CONNECTION_FAILURES.has(code);
            // Retry once, only what is safe to repeat (typically a reused keep-alive socket the
            // upstream had just closed).
            if (connectionFailure && idempotent && attempt === 0) {
              this.options.metrics.retries.inc({ route: route.name });
              continue;
            }
            if (code === 'UND_ERR_CONNECT_TIMEOUT')
              throw new ProxyError(504, `${route.name} could not be reached in time.`);
            throw new ProxyError(502, `${route.name} is unreachable (${code || 'connection failed'}).`);
          }
        }
        const chosen = upstream as Upstream;
        // 503 and 504 are the upstream's verdict on this one request (shedding load, or out of the
        // time the request itself gave, as PromQL's `timeout` does): it is up and answering, and a
        // client must not be able to open the breaker for everyone by asking for them.
        if (response.statusCode === 503 || response.statusCode === 504) chosen.breaker.release();
        else if (response.statusCode >= 500) chosen.breaker.failure();
        else chosen.breaker.success();
        const outHeaders = stripped(
          response.headers as Record<string, string | string[] | undefined>,
          HOP_BY_HOP,
        );
        outHeaders['x-request-id'] = requestId;
        res.writeHead(response.statusCode, outHeaders);
        // A body of known length carries the headers in the same write; a stream (server-sent
        // events, chunked) gets its headers at once, before the first event.
        if (outHeaders['content-length'] === undefined) res.flushHeaders();
        await relay(response.body, res, (n) => (bytesOut += n));
      } finally {
        res.off('close', leave);
        slots.release(client);
      }
    } catch (error) {
      const problem = error instanceof ProxyError ? error : new ProxyError(502, 'The upstream failed.');
      if (!(error instanceof ProxyError))
        this.options.logger.error({ err: error, requestId }, 'proxy failure');
      if (problem.reason) this.options.metrics.rejected.inc({ reason: problem.reason });
      if (!res.headersSent) {
        writeProblem(res, problem.status, problem.message, {
          headers: problem.headers,
          requestId,
          errors: problem.errors,
        });
      } else {
        res.destroy();
      }
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const status = res.statusCode;
      span.setAttributes({
        'http.response.status_code': status,
        'server.address': upstream?.origin ?? '',
        // The instance by name (queue-0), as /metrics names it: what a trace read without addresses shows.
        'gateway.upstream': upstream?.name ?? 'none',
      });
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      const path = (req.url ?? '').split('?')[0] ?? '';
      this.options.recorder?.record({
        at: new Date().toISOString(),
        route: route.name,
        method: req.method ?? '',
        path,
        status,
        latencyMs: Math.round(seconds * 1e6) / 1e3,
        bytesIn,
        bytesOut,
        keyId: principal?.keyId ?? null,
        requestId,
        traceId: traceId ?? null,
        upstream: upstream?.name ?? null,
      });
      this.options.metrics.requests.observe(
        {
          route: route.name,
          method: req.method ?? '',
          status: String(status),
          upstream: upstream?.name ?? 'none',
        },
        seconds,
      );
      this.options.logger.info(
        {
          requestId,
          keyId: principal?.keyId,
          method: req.method,
          path,
          route: route.name,
          status,
          ms: Math.round(seconds * 1e4) / 10,
          bytesIn,
          bytesOut,
          upstream: upstream?.name,
          origin: upstream?.origin,
        },
        'request',
      );
    }
  }

  private tooLarge(): ProxyError {
    const limit = this.options.bodyLimit;
    return new ProxyError(413, `The body is larger than the ${limit}-byte limit.`, {}, 'body_too_large', [
      { field: 'body', message: `must be at most ${limit} bytes` },
    ]);
  }

  private clientGone(req: IncomingMessage, body: Transform): void {
    if (req.complete) return;
    body.destroy(
      new ProxyError(
        499,
        'The client closed the connection before sending the whole body.',
        {},
        'client_closed',
      ),
    );
  }

  /** The answer to a request that failed for its own reasons; unknown errors are logged. */
  private requestFault(error: unknown, code: string, route: ProxyRoute): ProxyError {
    if (error instanceof ProxyError) return error;
    if (REQUEST_FAULTS.has(code)) {
      // undici names what it refused: a header ("invalid upgrade header"), or else the body.
      const why = (error as Error).message;
      return new ProxyError(400, `The request cannot be forwarded: ${why}.`, {}, 'unforwardable', [
        { field: /header/i.test(why) ? 'headers' : 'body', message: `cannot be forwarded: ${why}` },
      ]);
    }
    // Neither the upstream's fault nor one we know: 502 as before, but no breaker count.
    this.options.logger.error({ err: error, route: route.name }, 'upstream request failed');
    return new ProxyError(502, `${route.name} request failed.`);
  }

  private async authorize(
    req: IncomingMessage,
    route: ProxyRoute,
    rest: string,
  ): Promise<Principal | undefined> {
    if (!this.options.auth) return undefined;
    const path = rest.split('?')[0] ?? '';
    try {
      return await this.options.keys.authorize(
        req,
        route.access(req.method ?? 'GET', path),
        `${req.method} ${route.prefix}${path}`,
      );
    } catch (error) {
      if (error instanceof AuthError)
        throw new ProxyError(error.status, error.message, error.options.headers);
      // The key store (Postgres) is down: worth a retry, not a 502 that blames the upstream.
      this.options.logger.warn({ err: error }, 'API keys could not be checked');
      throw new ProxyError(
        503,
        'API keys cannot be checked right now; retry shortly.',
        { 'retry-after': '2' },
        'auth_unavailable',
      );
    }
  }

  /**
   * A slot of `budget` for `client`, or 503 with Retry-After. A client refused for holding its
   * share is logged (it has that many requests in flight or long-polls waiting, sent slowly or
   * waiting idle), and so is a long-poll refused for want of any slot, as one that was let in would
   * have held its slot for up to a minute.
   */
  private takeSlot(budget: SlotBudget, kind: SlotKind, client: string, requestId: string): void {
    const refused = budget.take(client);
    if (!refused) return;
    const perClient = refused === 'per_client';
    const reason: SlotReason = perClient ? `${kind}_per_client` : kind;
    if (perClient || kind === 'long_polls')
      this.options.logger.warn(
        {
          requestId,
          client,
          reason,
          holding: budget.holding(perClient ? client : undefined),
          limit: perClient ? budget.perClient : budget.max,
        },
        kind === 'long_polls' ? 'long-poll refused' : 'request refused',
      );
    const words = SLOT_WORDS[kind];
    throw new ProxyError(
      503,
      perClient
        ? `This ${client.startsWith('key:') ? 'key' : 'address'} has ${budget.perClient} ${words.held}, its most at once; retry when one returns.`
        : words.full,
      { 'retry-after': '1' },
      reason,
    );
  }

  private limit(res: ServerResponse, client: string): void {
    const wait = takeToken(this.options.limiter, res, client);
    if (wait !== undefined)
      throw new ProxyError(
        429,
        'Rate limit exceeded; slow down.',
        { 'retry-after': String(wait) },
        'rate_limit',
      );
  }

  private forwardHeaders(req: IncomingMessage, requestId: string): Record<string, string | string[]> {
    const headers = stripped(req.headers, NOT_FORWARDED);
    const { hops, fromTrustedProxy } = this.options.forwarding(req);
    // What a peer that is no trusted proxy (GATEWAY_TRUSTED_PROXIES) says of the request's way here
    // is its own claim: its Forwarded and X-Forwarded-* headers are dropped, and X-Forwarded-Proto
    // and -Host say what the gateway itself saw, as a reverse proxy sets them (nginx:
    // `proxy_set_header X-Forwarded-Proto $scheme`, `X-Forwarded-Host $host`), rather than left
    // out: the services may build links from them. A trusted proxy's are passed on.
    if (!fromTrustedProxy) {
      for (const name of Object.keys(headers))
        if (name === 'forwarded' || name.startsWith('x-forwarded-')) delete headers[name];
    }
    // The client and the trusted proxies between, ending with the peer (an IPv4 peer of the
    // dual-stack socket as IPv4: 10.0.0.1, not ::ffff:10.0.0.1); addresses left of the client are
    // claims no trusted proxy vouches for, and are not passed on.
    headers['x-forwarded-for'] = hops.join(', ');
    headers['x-forwarded-proto'] ??= 'encrypted' in req.socket ? 'https' : 'http';
    headers['x-forwarded-host'] ??= req.headers.host ?? '';
    // The path as the caller wrote it (the upstream sees its own, /v1/gpus for /api/v1/gpus), so
    // the upstream's 404s and 405s name the path the caller asked for. The query stays out (the
    // request line has it: twice, a long one would pass the upstream's header limit), and so does
    // a path too long to be worth repeating.
    delete headers['x-forwarded-uri'];
    const asked = (req.url ?? '/').split('?')[0] ?? '/';
    if (asked.length <= MAX_FORWARDED_PATH) headers['x-forwarded-uri'] = asked;
    headers['x-request-id'] = requestId;
    headers['authorization'] = this.upstreamAuthorization;
    // With the OpenTelemetry SDK running, the upstream's parent is this hop's span, sampled or
    // not (its flags say which, so the upstream follows the same decision). Without it, the
    // caller's trace context is passed on as is, or a new trace is started.
    delete headers['traceparent'];
    delete headers['tracestate'];
    const active = trace.getActiveSpan();
    if (active && isSpanContextValid(active.spanContext())) {
      propagation.inject(context.active(), headers);
    } else {
      const incoming = req.headers['traceparent'];
      const continued = typeof incoming === 'string' && TRACEPARENT.test(incoming);
      headers['traceparent'] = continued ? incoming : newTraceparent();
      // A tracestate belongs to the trace it came with: dropped with an invalid traceparent.
      if (continued && typeof req.headers['tracestate'] === 'string')
        headers['tracestate'] = req.headers['tracestate'];
    }
    return headers;
  }

  /** Round robin over the instances whose breaker lets a request through; 503 when none does. */
  private pick(route: ProxyRoute): Upstream {
    const start = this.cursor.get(route) ?? 0;
    for (let i = 0; i < route.upstreams.length; i++) {
      const index = (start + i) % route.upstreams.length;
      const candidate = route.upstreams[index] as Upstream;
      if (candidate.breaker.tryAcquire()) {
        this.cursor.set(route, index + 1);
        return candidate;
      }
    }
    const retryAfter = Math.min(...route.upstreams.map((u) => u.breaker.retryAfterSeconds()));
    throw new ProxyError(
      503,
      `Every ${route.name} upstream is failing; the circuit is open.`,
      { 'retry-after': String(retryAfter) },
      'circuit_open',
    );
  }

  async close(): Promise<void> {
    const upstreams = new Set(this.options.routes.flatMap((r) => r.upstreams));
    await Promise.all([...upstreams].flatMap((u) => [u.pool.close(), u.longPolls.close()]));
  }
}

/**
 * Streams the upstream body to the client with backpressure, counting bytes as they flow. Settles
 * when the response is done or the client is gone; a client that leaves stops the upstream read,
 * an upstream that breaks mid-body cuts the client's connection. (Lighter than stream.pipeline,
 * which allocates an AbortController and throws a DOMException into it on every completion.)
 */
function relay(body: Readable, res: ServerResponse, count: (bytes: number) => void): Promise<void> {
  if (res.destroyed) {
    // Gone between the upstream's headers and now: its 'close' has been and will not come again.
    body.destroy();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    body.on('data', (chunk: Buffer) => count(chunk.length));
    body.on('error', () => res.destroy());
    res.once('close', () => {
      if (!body.readableEnded) body.destroy();
      resolve();
    });
    body.pipe(res);
  });
}
