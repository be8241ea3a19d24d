import { ConfigError, listenProblem } from '@gpu-telemetry/config';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { writeProblem } from './problem';

export interface ServeOptions {
  port: number;
  /** Unset or empty: every address, IPv6 and IPv4 (Node's default: `::`, else `0.0.0.0`). */
  host?: string;
  logger: Logger;
  /** How long in-flight requests get to finish after SIGTERM before their sockets are cut. */
  shutdownTimeoutMs?: number;
  /** A client must send its request headers within this (default 10 s), else 408 and closed. */
  headersTimeoutMs?: number;
  /** ... and its whole request, body included, within this (default 60 s). */
  requestTimeoutMs?: number;
  /**
   * The most bytes of request line and headers (default 16 KiB, Node's; past it, 431). The
   * services that answer Prometheus' API take LARGE_REQUEST_HEADERS, as Prometheus does.
   */
  maxHeaderBytes?: number;
}

/**
 * Go's limit on a request's line and headers, which Prometheus keeps: Grafana asks label values
 * by GET, with a multi-value variable's every value in the URL (400 GPU UUIDs pass 16 KiB).
 */
export const LARGE_REQUEST_HEADERS = 1024 * 1024;
const NODE_HEADER_BYTES = 16 * 1024;

/**
 * A port the service cannot open: taken by another process, privileged, or on an address this
 * machine lacks. Its message is one line naming the address and the variable to change; listen()
 * has logged it as fatal, and runMain() exits 1 on it without a stack.
 */
export class ListenError extends Error {
  override readonly name = 'ListenError';

  constructor(
    message: string,
    readonly code: string,
    readonly host: string | undefined,
    readonly port: number,
  ) {
    super(message);
  }

  /** The ListenError for a server's listen failure, or undefined for a failure it does not explain. */
  static from(
    error: NodeJS.ErrnoException,
    options: Pick<ServeOptions, 'host' | 'port'>,
  ): ListenError | undefined {
    const host = options.host || undefined;
    const problem = listenProblem(error.code, host, options.port);
    return problem === undefined ? undefined : new ListenError(problem, error.code ?? '', host, options.port);
  }
}

export interface RunningServer {
  server: Server;
  port: number;
  /** Stops accepting, lets in-flight requests finish (up to the timeout), then cuts the rest. */
  close(): Promise<void>;
}

/**
 * Listens with timeouts that protect against slow clients (slowloris): headers must arrive within
 * 10 s and the whole request within 60 s, checked every second (Node's default check runs every
 * 30 s, which would let a drip-fed connection live for 40). Keep-alive outlives common
 * load-balancer idle timeouts.
 */
export async function listen(handler: RequestListener, options: ServeOptions): Promise<RunningServer> {
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const maxHeaderSize = options.maxHeaderBytes ?? NODE_HEADER_BYTES;
  const server = createServer(
    {
      connectionsCheckingInterval: Math.min(1_000, Math.max(100, headersTimeout / 2)),
      maxHeaderSize,
      // Node's own refusal is a bare 400: answered below instead, as every other problem is.
      requireHostHeader: false,
    },
    (req, res) => {
      if (!answeredMissingHost(req, res)) handler(req, res);
    },
  );
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = headersTimeout;
  server.requestTimeout = options.requestTimeoutMs ?? 60_000;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) =>
    answerClientError(error, socket, maxHeaderSize),
  );
  await new Promise<void>((resolve, reject) => {
    const refused = (error: NodeJS.ErrnoException) => {
      const listenError = ListenError.from(error, options);
      if (listenError)
        options.logger.fatal(
          { host: listenError.host, port: listenError.port, code: listenError.code },
          listenError.message,
        );
      reject(listenError ?? error);
    };
    server.once('error', refused);
    server.listen(options.port, options.host || undefined, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  // Stopping, every response closes its connection: a keep-alive client would otherwise hold its
  // socket past the response (Node keeps it open), and close() would wait for the timeout.
  server.prependListener('request', (_req, res) => {
    if (closing) res.setHeader('connection', 'close');
  });
  return {
    server,
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          options.logger.warn('shutdown timeout: closing remaining connections');
          server.closeAllConnections();
        }, options.shutdownTimeoutMs ?? 10_000);
        timer.unref();
        // A request in flight when the stop began answers with keep-alive (its headers may be
        // sent): its socket is closed once idle, checked every 100 ms.
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        sweep.unref();
        server.close(() => {
          clearTimeout(timer);
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      })),
  };
}

/** What a request target must be (HPE_INVALID_URL). */
const PATH_RULE = 'must be ASCII without spaces, other characters percent-encoded (RFC 3986)';

const CLIENT_ERRORS: Record<
  string,
  [status: number, title: string, detail: string, field?: string, message?: string]
> = {
  HPE_HEADER_OVERFLOW: [
    431,
    'Request Header Fields Too Large',
    'The request line and headers must fit in %s KiB.',
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'The request did not arrive in time.'],
  HPE_INVALID_METHOD: [400, 'Bad Request', 'The request method is not valid HTTP.'],
  // A raw space, control character or byte past ASCII in the request target.
  HPE_INVALID_URL: [400, 'Bad Request', `path: ${PATH_RULE}`, 'path', PATH_RULE],
};

/**
 * RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. Node's own check (requireHostHeader)
 * answers a bare 400; `listen` turns it off and asks this instead, as must a server's
 * `checkContinue` and `checkExpectation` listeners, which Node calls in place of the request one.
 * True when it answered.
 */
export function answeredMissingHost(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.headers.host !== undefined || req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return false;
  req.resume();
  writeProblem(res, 400, 'host: is required in HTTP/1.1', {
    errors: [{ field: 'host', message: 'is required in HTTP/1.1' }],
    headers: { connection: 'close' },
  });
  return true;
}

/** A problem+json body for a socket Node refused before any response existed, naming the field at fault when there is one. */
function problem(status: number, title: string, detail: string, field?: string, message?: string): string {
  return JSON.stringify({
    type: 'about:blank',
    title,
    status,
    detail,
    ...(field ? { errors: [{ field, message }] } : {}),
  });
}

/**
 * Requests Node refuses before any handler runs (headers too large, malformed HTTP, too slow) get
 * the same problem+json as everything else instead of Node's bare status line.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex, maxHeaderSize: number): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, title, detail, field, message] = CLIENT_ERRORS[error.code ?? ''] ?? [
    400,
    'Bad Request',
    'The request is not valid HTTP/1.1.',
  ];
  const body = problem(status, title, detail.replace('%s', String(maxHeaderSize / 1024)), field, message);
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface ShutdownStep {
  name: string;
  run(): Promise<void> | void;
}

/**
 * SIGTERM and SIGINT run the steps in order (stop workers, drain the server, close the pool) and
 * exit 0; a second signal exits at once. Steps that fail are logged and the next still runs. A
 * shutdown that outlasts `deadlineMs` (default 30 s) is cut short with exit 1, naming the step it
 * was stuck in, so a hung dependency can never keep a stopping process alive. Returns a function
 * that removes the signal handlers and cancels a pending deadline.
 */
export function onShutdown(
  logger: Logger,
  steps: ShutdownStep[],
  options: { deadlineMs?: number } = {},
): () => void {
  let stopping = false;
  let current = 'starting';
  let deadline: NodeJS.Timeout | undefined;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    deadline = setTimeout(() => {
      logger.error(
        { step: current, deadlineMs: options.deadlineMs ?? 30_000 },
        'shutdown did not finish in time; exiting',
      );
      logger.flush?.();
      process.exit(1);
    }, options.deadlineMs ?? 30_000).unref();
    for (const step of steps) {
      current = step.name;
      try {
        await step.run();
      } catch (error) {
        logger.error({ err: error, step: step.name }, 'shutdown step failed');
      }
    }
    clearTimeout(deadline);
    logger.info('stopped');
    logger.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return () => {
    clearTimeout(deadline);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  };
}

/** Last resort: log what escaped and exit non-zero, so the orchestrator restarts a clean process. */
export function exitOnFatal(logger: Logger): void {
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
}

/**
 * Runs a service's main. A configuration error (ConfigError) prints its list of problems plainly,
 * not as a stack; a port that cannot be opened (ListenError) has been logged as one fatal line
 * already; any start-up failure exits 1.
 */
export function runMain(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    if (!(error instanceof ListenError)) {
      console.error(error instanceof ConfigError ? error.message : error);
    }
    process.exit(1);
  });
}
