import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context } from '@opentelemetry/api';
import express, {
  type Express,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  Router,
} from 'express';
import { bodyMeansNothing, JSON_MEDIA_TYPES, notJsonBody } from './json-body';
import { spellUtf8AsTheParserDoes } from './json-charset';
import type { Logger } from 'pino';
import { errorHandler } from './error-handler';
import type { ServiceMetrics } from './metrics';
import { allowedMethods, pathTemplates } from './path-templates';
import { sendProblem } from './problem';
import { interceptResponse, type ResponseCheck } from './response-check';
import { requireServiceToken, type ServiceToken } from './service-auth';

export interface ReadinessCheck {
  /** Named in the 503 when it fails: `postgres`, `queue`. */
  name: string;
  /**
   * Resolves when the dependency answers. It must settle on its own, in bounded time: probes that
   * arrive while it runs share it (each still times out after readinessTimeoutMs), so one that
   * never settled would leave every later probe waiting on it.
   */
  check(): Promise<void>;
  /**
   * False for a dependency the pod serves without (the gateway's upstreams: the proxy answers
   * 502/503 for the one route that lacks it): reported in `checks`, but never a 503, so that one
   * backend's outage does not take every pod out of its Service.
   */
  required?: boolean;
}

/** Sent on every answer of every service (and on everything the gateway proxies). */
export const SECURITY_HEADERS: readonly (readonly [name: string, value: string])[] = [
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
];

export interface ServiceAppOptions {
  service: string;
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: ReadinessCheck[];
  /** Largest JSON body accepted; larger is a 413. Default 1 MiB. */
  bodyLimit?: number;
  /** Mounts the service's own routes. */
  routes(app: Express): void;
  /**
   * Mounts routes that read their own request body (as bytes, to check it before anything is
   * built from it), before the JSON parser and its bodyLimit.
   */
  rawBodyRoutes?(app: Express): void;
  /**
   * Mounts routes whose bodies are not JSON at all (protobuf; form-encoded, read with `formBody`),
   * before the check that answers 415 to anything else: each checks its own media type and reads
   * its own body, within its own limit.
   */
  binaryBodyRoutes?(app: Express): void;
  /** Served as GET /openapi.json. */
  openapi?: object;
  /**
   * The document whose paths say which methods a path takes, for the 405s (with Allow) of a
   * method it does not: default `openapi` (a service that serves its document itself names it here).
   */
  methodsOf?: object;
  /**
   * When set, every route but /healthz, /readyz and /metrics needs this credential (a 401
   * otherwise): the backends answer only the system's own services.
   */
  serviceToken?: ServiceToken;
  /**
   * Runs on every request but /healthz, /readyz and /metrics (after the service credential, when
   * one is asked), before its method, media type or body is looked at: a service's own check of
   * who calls (the gateway's API keys), so that a caller it refuses has no body read or parsed and
   * learns nothing of the API from a 405, 415 or 400. It answers the request, or passes it on
   * (errors go to the service's error mapper).
   */
  authenticate?: RequestHandler;
  /**
   * Longest a readiness check may take before it counts as failed (default 2 s): a dependency
   * that hangs (a stopped process, a black-holed network) makes /readyz answer 503 promptly
   * instead of hanging past the orchestrator's probe timeout.
   */
  readinessTimeoutMs?: number;
  /**
   * What /readyz, which needs no credential, says of a failed check: `full` (the default), the
   * error's message; `brief`, `failed` alone, or `failed: no answer within N ms` when it timed out,
   * which names nothing of the network behind (an error's text can carry host names, addresses and
   * ports): for a service that faces the internet. Either way the error itself is logged.
   */
  readinessDetail?: 'full' | 'brief';
  /** The clock of the readiness log (tests); default Date.now. */
  now?: () => number;
  /**
   * Tests: every answer is read by this check before it is sent (`documentedResponses` in
   * ./testing holds them to the OpenAPI document); one it finds wrong is answered as a 500
   * problem naming the mismatch, so the test that caused it fails.
   */
  checkResponse?: ResponseCheck;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** How often a check that stays failed is logged again, with its latest error. */
const READINESS_RELOG_MS = 60_000;

/**
 * Logs a readiness check's failures, which /readyz may show only in brief: at warn with the error
 * when it starts failing, again at most once every READINESS_RELOG_MS while it stays failed, and
 * at info when it answers again. /readyz needs no credential, so however often it is asked, a
 * check logs a line per change of state (or per interval), not one per probe.
 */
function readinessLog(logger: Logger, now: () => number) {
  const failingLoggedAt = new Map<ReadinessCheck, number>();
  return (check: ReadinessCheck, outcome: { ok: true } | { ok: false; error: unknown }): void => {
    const loggedAt = failingLoggedAt.get(check);
    const { name, required = true } = check;
    if (outcome.ok) {
      if (loggedAt === undefined) return;
      failingLoggedAt.delete(check);
      logger.info({ check: name }, 'readiness check answers again');
      return;
    }
    if (loggedAt !== undefined && now() - loggedAt < READINESS_RELOG_MS) return;
    failingLoggedAt.set(check, now());
    logger.warn(
      { check: name, required, err: outcome.error },
      loggedAt === undefined ? 'readiness check failed' : 'readiness check still failing',
    );
  };
}

/**
 * What every answer carries, set before anything else is: the request id (the caller's
 * `x-request-id` when it is a plain token, else a new one), returned, and the security headers.
 */
export function stampAnswer(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('x-request-id', id);
  for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
  return id;
}

const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

declare module 'express-serve-static-core' {
  interface Request {
    log: Logger;
    id: string;
  }
}

/**
 * The path the caller asked for: behind the gateway (`trusted`: the caller proved it is one of
 * the system's services), the one it names in X-Forwarded-Uri (the service sees its own,
 * /v1/gpus for /api/v1/gpus), else the request's.
 */
function askedPath(req: Request, trusted: boolean): string {
  const forwarded = trusted ? req.headers['x-forwarded-uri'] : undefined;
  return typeof forwarded === 'string' && forwarded.startsWith('/')
    ? (forwarded.split('?')[0] ?? '/')
    : req.path;
}

/**
 * The common frame of every service: request ids, one log line and one histogram sample per
 * request, `/healthz`, `/readyz`, `/metrics`, JSON bodies with a size limit, and problem+json
 * errors. The service adds its routes; no globals, so tests build as many apps as they like.
 */
/**
 * A router of a service's routes, matching paths as the app does: case-sensitively, as the OpenAPI
 * document writes them (express.Router() alone would take /V1/TOPICS for /v1/topics).
 */
export function apiRouter(): Router {
  return Router({ caseSensitive: true });
}

export function createServiceApp(options: ServiceAppOptions): Express {
  const { service, logger, metrics } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.set('query parser', 'simple');
  // Paths are matched as the OpenAPI document writes them (apiRouter does too), as the
  // 405 check and the gateway's scopes match them: /V1/TOPICS is not /v1/topics.
  app.set('case sensitive routing', true);

  const { checkResponse } = options;
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (checkResponse) {
      interceptResponse(req, res, checkResponse, () =>
        req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : undefined,
      );
    }
    const id = stampAnswer(req, res);
    req.id = id;
    res.locals['requestId'] = id;
    req.log = logger.child({ requestId: id });
    const started = process.hrtime.bigint();
    // The server span's context, so the request line carries its trace id.
    const requestContext = context.active();
    // Recorded once: when the answer is sent, or when the connection closes before it is (the
    // client left, or the answer broke off): 499, as proxies log it, so abandoned slow requests
    // stay in the latency histogram and the log.
    let recorded = false;
    const record = () =>
      context.with(requestContext, () => {
        if (recorded) return;
        recorded = true;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
        const status = res.writableFinished ? res.statusCode : 499;
        metrics.httpDuration.observe({ method: req.method, route, status: String(status) }, seconds);
        const line = {
          method: req.method,
          path: req.originalUrl.split('?')[0],
          route,
          status,
          ms: Math.round(seconds * 1e4) / 10,
          bytesIn: Number(req.headers['content-length'] ?? 0),
          bytesOut: Number(res.getHeader('content-length') ?? 0),
        };
        if (QUIET_PATHS.has(req.path)) req.log.debug(line, 'request');
        else if (status >= 500) req.log.error(line, 'request');
        else req.log.info(line, 'request');
      });
    res.on('finish', record);
    res.on('close', record);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', service });
  });

  const readinessTimeoutMs = options.readinessTimeoutMs ?? 2_000;
  const brief = options.readinessDetail === 'brief';
  const logReadiness = readinessLog(logger, options.now ?? Date.now);
  // /readyz needs no credential: every request that asks while a dependency's check runs (past
  // its timeout too) shares that check, so a flood of probes costs each dependency one at a time.
  const running = new Map<ReadinessCheck, Promise<void>>();
  const shared = (readiness: ReadinessCheck): Promise<void> => {
    let run = running.get(readiness);
    if (!run) {
      run = (async () => readiness.check())().finally(() => running.delete(readiness));
      running.set(readiness, run);
    }
    return run;
  };
  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      options.readiness.map(async (readiness) => {
        const { name, required = true } = readiness;
        const noAnswer = new Error(`no answer within ${readinessTimeoutMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            shared(readiness),
            new Promise<never>((_resolve, reject) => {
              timer = setTimeout(() => reject(noAnswer), readinessTimeoutMs);
            }),
          ]).finally(() => clearTimeout(timer));
          logReadiness(readiness, { ok: true });
          return { name, required, ok: true as const, said: 'ok' };
        } catch (error) {
          logReadiness(readiness, { ok: false, error });
          // Brief: the dependency's own words stay in the log; the timeout is the frame's own.
          const said =
            brief && error !== noAnswer
              ? 'failed'
              : `failed: ${error instanceof Error ? error.message : String(error)}`;
          return { name, required, ok: false as const, said };
        }
      }),
    );
    const checks = Object.fromEntries(results.map((r) => [r.name, r.said]));
    const failed = results.filter((r) => !r.ok && r.required).map((r) => r.name);
    if (failed.length === 0) {
      res.json({ status: 'ready', service, checks });
      return;
    }
    sendProblem(res, 503, `Not ready: ${failed.join(', ')} unavailable.`, {
      extensions: { service, failed, checks },
      headers: { 'Retry-After': '5' },
    });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // Everything below needs the service credential, checked before a body is read.
  if (options.serviceToken) app.use(requireServiceToken(options.serviceToken, metrics.registry));
  // Past that check only the system's own services call (the gateway among them), so the path a
  // caller asked the gateway for (X-Forwarded-Uri) can be believed; at the edge it cannot.
  const trustForwarded = options.serviceToken !== undefined;
  if (options.authenticate) app.use(options.authenticate);

  // A path the API has, asked with a method it does not take, is a 405 listing those it does,
  // before any body is read: its media type or syntax is beside the point. Every routed method is
  // documented (documentedResponses holds the tests to it), so none is turned away here.
  const templates = pathTemplates(
    (
      (options.methodsOf ?? options.openapi) as
        { paths?: Record<string, Record<string, unknown>> } | undefined
    )?.paths,
  );
  app.use((req: Request, res: Response, next: NextFunction) => {
    const allowed = allowedMethods(templates, req.path);
    if (!allowed || allowed.includes(req.method)) return next();
    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', allowed.join(', '));
      res.status(204).end();
      return;
    }
    const asked = askedPath(req, trustForwarded);
    sendProblem(res, 405, `${req.method} is not allowed on ${asked}; it takes ${allowed.join(', ')}.`, {
      headers: { Allow: allowed.join(', ') },
    });
  });

  if (options.openapi) {
    const document = JSON.stringify(options.openapi);
    app.get('/openapi.json', (_req, res) => {
      res.type('application/json').send(document);
    });
  }

  options.binaryBodyRoutes?.(app);

  // Bodies are JSON. Anything else with a body is a 415, not a confusing "field required".
  app.use((req: Request, _res: Response, next: NextFunction) => {
    spellUtf8AsTheParserDoes(req.headers);
    next(notJsonBody(req));
  });
  options.rawBodyRoutes?.(app);
  app.use(
    express.json({
      limit: options.bodyLimit ?? 1024 * 1024,
      strict: false,
      type: (req) => !bodyMeansNothing(req.method) && Boolean((req as Request).is(JSON_MEDIA_TYPES)),
    }),
  );

  options.routes(app);

  app.use((req: Request, res: Response) => {
    sendProblem(res, 404, `No route for ${req.method} ${askedPath(req, trustForwarded)}.`);
  });
  app.use(errorHandler(logger, templates));
  return app;
}
