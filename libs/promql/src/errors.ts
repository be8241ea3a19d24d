/**
 * The errors a query can end in, one class per `errorType` of Prometheus's HTTP API envelope:
 * `bad_data` (400: the query or its parameters are wrong), `execution` (422: evaluation failed,
 * too many samples included), `timeout` and `canceled` (503).
 */
export type PromErrorType = 'bad_data' | 'execution' | 'timeout' | 'canceled';

export abstract class PromQLError extends Error {
  abstract readonly errorType: PromErrorType;
  abstract readonly httpStatus: number;
}

/** The query does not parse or does not type-check; `position` is the 0-based offset in it. */
export class BadDataError extends PromQLError {
  readonly errorType = 'bad_data';
  readonly httpStatus = 400;
  constructor(
    message: string,
    readonly position?: { start: number; end: number },
  ) {
    super(message);
    this.name = 'BadDataError';
  }
}

export class ExecutionError extends PromQLError {
  readonly errorType = 'execution';
  readonly httpStatus = 422;
  constructor(message: string) {
    super(message);
    this.name = 'ExecutionError';
  }
}

/** The max samples budget was spent. */
export class TooManySamplesError extends ExecutionError {
  constructor() {
    super('query processing would load too many samples into memory in query execution');
    this.name = 'TooManySamplesError';
  }
}

export class QueryTimeoutError extends PromQLError {
  readonly errorType = 'timeout';
  readonly httpStatus = 503;
  constructor(where: string) {
    super(`query timed out in ${where}`);
    this.name = 'QueryTimeoutError';
  }
}

export class QueryCanceledError extends PromQLError {
  readonly errorType = 'canceled';
  readonly httpStatus = 503;
  constructor(where: string) {
    super(`query was canceled in ${where}`);
    this.name = 'QueryCanceledError';
  }
}

export interface PrometheusErrorBody {
  status: 'error';
  errorType: PromErrorType | 'internal';
  error: string;
}

/** The HTTP status and body Prometheus answers for an error (anything unknown is internal, 500). */
export function toPrometheusError(err: unknown): { httpStatus: number; body: PrometheusErrorBody } {
  if (err instanceof PromQLError) {
    return {
      httpStatus: err.httpStatus,
      body: { status: 'error', errorType: err.errorType, error: err.message },
    };
  }
  return {
    httpStatus: 500,
    body: { status: 'error', errorType: 'internal', error: (err as Error)?.message ?? String(err) },
  };
}

/** `line:column: parse error: message`, Prometheus's spelling of a parse error. */
export function parseErrorMessage(query: string, position: number, message: string): string {
  let line = 1;
  let lastBreak = -1;
  for (let i = 0; i < Math.min(position, query.length); i++) {
    if (query[i] === '\n') {
      line++;
      lastBreak = i;
    }
  }
  return `${line}:${position - lastBreak}: parse error: ${message}`;
}
