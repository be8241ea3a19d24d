import {
  BadDataError,
  isValidLabelName,
  labelsToRecord,
  type Matcher,
  parseExpr,
  parseMetricSelector,
  PromQLError,
} from '@gpu-telemetry/promql';
import {
  apiRouter,
  formBody,
  FormBodyError,
  isDependencyFailure,
  undecodableSegment,
} from '@gpu-telemetry/service-kit';
import {
  type ErrorRequestHandler,
  type Request,
  type RequestHandler,
  type Response,
  type Router,
} from 'express';
import { PROMETHEUS_COMPATIBLE_VERSION, type PrometheusService } from '../services/prometheus.service';
import type { StoredMetadata } from '../services/prometheus.queries';
import { sendQueryResult } from './prometheus-json';

/** Where the Prometheus HTTP API lives on the streamer (the gateway serves it as /prometheus/api/v1). */
export const PROMETHEUS_API = '/v1/prometheus/api/v1';
/** Largest form body: Prometheus reads up to 10 MB; dashboards' queries are a few KB. */
export const PROMETHEUS_FORM_LIMIT = 1024 * 1024;

/** Prometheus' error types, and the HTTP status each is answered with. */
type ErrorType = 'bad_data' | 'execution' | 'timeout' | 'canceled' | 'internal' | 'unavailable';
const STATUS: Record<ErrorType, number> = {
  bad_data: 400,
  execution: 422,
  timeout: 503,
  canceled: 503,
  internal: 500,
  unavailable: 503,
};

/** An error answered in Prometheus' envelope. */
class ApiError extends Error {
  constructor(
    readonly errorType: ErrorType,
    message: string,
    readonly status = STATUS[errorType],
  ) {
    super(message);
  }
}

/**
 * A request's parameters as Prometheus reads them (Go's Request.FormValue and Form): the form
 * body's values first, then the query string's.
 */
class Params {
  private readonly query: URLSearchParams;
  private readonly body: URLSearchParams;

  constructor(req: Request) {
    const url = req.originalUrl;
    const at = url.indexOf('?');
    this.query = new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
    this.body = req.body instanceof URLSearchParams ? req.body : new URLSearchParams();
  }

  /** The first value, or '' (Prometheus treats a missing parameter and an empty one alike). */
  get(name: string): string {
    return this.body.get(name) ?? this.query.get(name) ?? '';
  }

  all(name: string): string[] {
    return [...this.body.getAll(name), ...this.query.getAll(name)];
  }
}

const invalidParam = (name: string, message: string) =>
  new ApiError('bad_data', `invalid parameter ${JSON.stringify(name)}: ${message}`);

/** Go's strconv.Quote for these messages: close enough to JSON's quoting for what they show. */
const quote = (s: string) => JSON.stringify(s);

/** Prometheus' "maximum" time, in ms: what an absent `end` of series and labels means. */
const MAX_TIME_MS = 9_223_309_901_257_974; // (math.MaxInt64/1000 - 62135596801) * 1000, as Prometheus' maxTime
const MIN_TIME_MS = -9_223_309_901_257_974;

/**
 * A decimal number as Go's ParseFloat reads one. Written so that no two ways of matching a string
 * exist: a failing match costs one pass, however long the digits run (`\d+\.?\d*` would try every
 * split of a run of digits: minutes of CPU for a megabyte of them).
 */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Longer than any time or duration Prometheus prints: refused before any pattern reads it. */
const MAX_PARAM_LENGTH = 256;

/**
 * Prometheus' parseTime: unix seconds (a float, rounded to the millisecond) or RFC 3339; ms.
 * Prometheus' own spellings of its minimum and maximum times are accepted too. Seconds whose
 * milliseconds overflow a double (1e308) are refused: Prometheus wraps them around int64.
 */
export function parseTime(text: string): number | undefined {
  if (text.length > MAX_PARAM_LENGTH) return undefined;
  // Go's ParseFloat, then time.Parse: neither trims spaces.
  if (DECIMAL.test(text)) {
    const seconds = Number(text);
    const whole = Math.trunc(seconds);
    const ms = whole * 1000 + roundHalfAway((seconds - whole) * 1000);
    return Number.isFinite(ms) ? ms : undefined;
  }
  if (text === '-292273086-05-16T16:47:06Z') return MIN_TIME_MS;
  if (text === '292277025-08-18T07:12:54.999999999Z') return MAX_TIME_MS;
  // RFC 3339 as Go's time.Parse reads it: `T` and `Z` in capitals, and every field in its range
  // (no 30 February, no 24:00, no leap second), where Date.parse would roll them over.
  const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/.exec(
    text,
  );
  if (!rfc3339) return undefined;
  const [year, month, day, hour, minute, second] = rfc3339.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // Date.UTC reads years 0-99 as 1900-1999: every date is made at 2000 and moved to its year.
  const utc = (monthIndex: number, date: number, h = 0, m = 0, sec = 0, ms = 0) => {
    const at = new Date(Date.UTC(2000, 0));
    at.setUTCFullYear(year, monthIndex, date);
    return at.setUTCHours(h, m, sec, ms);
  };
  const daysInMonth = new Date(utc(month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // An offset may be as long as 24:00 (Go: "some people do write offsets of 24 hours").
  const [zone = 'Z', offsetHours = '0', offsetMinutes = '0'] = rfc3339.slice(8);
  if (Number(offsetHours) > 24 || Number(offsetMinutes) > 60) return undefined;
  const offsetMs =
    (zone.startsWith('-') ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000;
  // Milliseconds of the fraction, the rest cut (Prometheus keeps whole milliseconds).
  const fraction = Number((rfc3339[7] ?? '.').slice(1, 4).padEnd(3, '0'));
  return utc(month - 1, day, hour, minute, second, fraction) - offsetMs;
}

/** Go's math.Round: halves away from zero (JavaScript's Math.round takes -0.5 to 0). */
function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** The longest duration Prometheus takes (a Go time.Duration, int64 nanoseconds, ~292y), in ms. */
const MAX_DURATION_MS = 9_223_372_036_854;

/** Prometheus' parseDuration: seconds (a float) or a duration such as 15s, 1m30s, 2h; ms. */
export function parseDurationParam(text: string): number | undefined {
  if (text.length > MAX_PARAM_LENGTH) return undefined;
  if (DECIMAL.test(text)) {
    const seconds = Number(text);
    if (!Number.isFinite(seconds) || Math.abs(seconds) > 9_223_372_036) return undefined;
    // Go: time.Duration(seconds * 1e9) truncates to the nanosecond, and the engine takes whole
    // milliseconds of it: 1.9999 is 1,999 ms there, not 2,000.
    return Math.trunc(Math.trunc(seconds * 1e9) / 1e6) + 0;
  }
  // Prometheus' model.ParseDuration: units in decreasing order, each at most once.
  if (text === '' || text === '0') return text === '0' ? 0 : undefined;
  const re = /(\d+)(ms|y|w|d|h|m|s)/gy;
  let ms = 0;
  let at = 0;
  let lastRank = -1;
  const order = ['y', 'w', 'd', 'h', 'm', 's', 'ms'];
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const rank = order.indexOf(m[2] as string);
    if (rank <= lastRank) return undefined;
    lastRank = rank;
    ms += Number(m[1]) * (UNITS[m[2] as string] as number);
    at = re.lastIndex;
  }
  return at === text.length && lastRank >= 0 && ms <= MAX_DURATION_MS ? ms : undefined;
}

/** An optional time (Prometheus' parseTimeParam, which names the parameter twice in its error). */
function timeParam(params: Params, name: string, fallback: number): number {
  const text = params.get(name);
  if (text === '') return fallback;
  const ms = parseTime(text);
  if (ms === undefined)
    throw invalidParam(
      name,
      `Invalid time value for '${name}': cannot parse ${quote(text)} to a valid timestamp`,
    );
  return ms;
}

function requiredTime(params: Params, name: string): number {
  const text = params.get(name);
  const ms = parseTime(text);
  if (ms === undefined) throw invalidParam(name, `cannot parse ${quote(text)} to a valid timestamp`);
  return ms;
}

function timeoutParam(params: Params): number | undefined {
  const text = params.get('timeout');
  if (text === '') return undefined;
  const ms = parseDurationParam(text);
  if (ms === undefined) throw invalidParam('timeout', `cannot parse ${quote(text)} to a valid duration`);
  return ms;
}

/**
 * `lookback_delta` of an instant or range query, as Prometheus 2.45 and later read it: a duration
 * for this query's instant selectors instead of PROMQL_LOOKBACK_DELTA; zero or negative, the
 * default. (2.42 ignored it.)
 */
function lookbackParam(params: Params): number | undefined {
  const text = params.get('lookback_delta');
  if (text === '') return undefined;
  const ms = parseDurationParam(text);
  if (ms === undefined)
    throw new ApiError(
      'bad_data',
      `error parsing lookback delta duration: cannot parse ${quote(text)} to a valid duration`,
    );
  return ms > 0 ? ms : undefined;
}

/** `limit` of series, labels and label values, read as Prometheus 2.54 reads it (Go's strconv.Atoi). */
function limitParam(params: Params): number {
  const text = params.get('limit');
  if (text === '') return 0;
  if (!/^[+-]?\d+$/.test(text))
    throw invalidParam('limit', `strconv.Atoi: parsing ${quote(text)}: invalid syntax`);
  const value = BigInt(text);
  if (value > 2n ** 63n - 1n || value < -(2n ** 63n))
    throw invalidParam('limit', `strconv.Atoi: parsing ${quote(text)}: value out of range`);
  if (value < 0n) throw invalidParam('limit', 'limit must be non-negative');
  return Number(value);
}

/**
 * The query, parsed once here so a syntax error reads as Prometheus writes it: an invalid `query`
 * parameter of an instant query, and bare for a range query (as Prometheus 2 answers both).
 */
function queryParam(params: Params, named = true): string {
  const query = params.get('query');
  try {
    parseExpr(query);
  } catch (error) {
    if (error instanceof BadDataError)
      throw named ? invalidParam('query', error.message) : new ApiError('bad_data', error.message);
    throw error;
  }
  return query;
}

/**
 * The `match[]` selectors. A series query names the parameter in its error; label names and values
 * give the parser's error bare, as Prometheus does.
 */
function matchParams(params: Params, forSeries: boolean): Matcher[][] {
  return params.all('match[]').map((text) => {
    try {
      return parseMetricSelector(text);
    } catch (error) {
      if (error instanceof BadDataError)
        throw forSeries ? invalidParam('match[]', error.message) : new ApiError('bad_data', error.message);
      throw error;
    }
  });
}

/** The optional start and end of series, labels and label values (absent: all time). */
function rangeParams(params: Params): { startMs?: number; endMs?: number } {
  const startMs = timeParam(params, 'start', MIN_TIME_MS);
  const endMs = timeParam(params, 'end', MAX_TIME_MS);
  return {
    ...(startMs === MIN_TIME_MS ? {} : { startMs }),
    ...(endMs === MAX_TIME_MS ? {} : { endMs }),
  };
}

/** A list cut at `limit` (0: no limit), with Prometheus' warning when it was cut. */
function limited<T>(items: T[], limit: number): { data: T[]; warnings?: string[] } {
  if (limit > 0 && items.length > limit)
    return { data: items.slice(0, limit), warnings: ['results truncated due to limit'] };
  return { data: items };
}

const send = (res: Response, body: object) => {
  res.json({ status: 'success', ...body });
};

/** Cancelled when the client leaves before its answer: a query nobody waits for stops at its next check. */
function clientGone(res: Response): AbortSignal {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * The Prometheus HTTP API (v1) over the stored telemetry, as Grafana, promtool and scripts speak
 * it: GET, or POST with a form body; Prometheus' parameter spellings, its JSON envelope, and its
 * error types with their HTTP statuses (400 bad_data, 422 execution, 503 timeout).
 */
export function prometheusRoutes(prometheus: PrometheusService, now: () => number = Date.now): Router {
  const router = apiRouter();
  const readForm = formBody({ limit: PROMETHEUS_FORM_LIMIT });
  const both = (path: string, handler: RequestHandler) => {
    router.get(`${PROMETHEUS_API}${path}`, readForm, handler);
    router.post(`${PROMETHEUS_API}${path}`, readForm, handler);
  };

  both('/query', async (req, res) => {
    const params = new Params(req);
    const timeMs = timeParam(params, 'time', now());
    const timeoutMs = timeoutParam(params);
    const lookbackDeltaMs = lookbackParam(params);
    const query = queryParam(params);
    const result = await prometheus.instantQuery(query, timeMs, {
      timeoutMs,
      lookbackDeltaMs,
      signal: clientGone(res),
    });
    await sendQueryResult(res, result);
  });

  both('/query_range', async (req, res) => {
    const params = new Params(req);
    const startMs = requiredTime(params, 'start');
    const endMs = requiredTime(params, 'end');
    if (endMs < startMs) throw invalidParam('end', 'end timestamp must not be before start time');
    const stepText = params.get('step');
    const stepMs = parseDurationParam(stepText);
    if (stepMs === undefined)
      throw invalidParam('step', `cannot parse ${quote(stepText)} to a valid duration`);
    if (stepMs <= 0) {
      throw invalidParam(
        'step',
        'zero or negative query resolution step widths are not accepted. Try a positive integer',
      );
    }
    if (Math.floor((endMs - startMs) / stepMs) > 11_000) {
      throw new ApiError(
        'bad_data',
        'exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)',
      );
    }
    const timeoutMs = timeoutParam(params);
    const lookbackDeltaMs = lookbackParam(params);
    const query = queryParam(params, false);
    const result = await prometheus.rangeQuery(
      query,
      { startMs, endMs, stepMs },
      { timeoutMs, lookbackDeltaMs, signal: clientGone(res) },
    );
    await sendQueryResult(res, result);
  });

  both('/series', async (req, res) => {
    const params = new Params(req);
    if (params.all('match[]').length === 0) throw new ApiError('bad_data', 'no match[] parameter provided');
    const limit = limitParam(params);
    const range = rangeParams(params);
    const matchers = matchParams(params, true);
    const timeoutMs = timeoutParam(params);
    const series = await prometheus.series(matchers, range, { timeoutMs, signal: clientGone(res) });
    send(res, limited(series.map(labelsToRecord), limit));
  });

  both('/labels', async (req, res) => {
    const params = new Params(req);
    const limit = limitParam(params);
    const range = rangeParams(params);
    const matchers = matchParams(params, false);
    const timeoutMs = timeoutParam(params);
    const names = await prometheus.labelNames(matchers, range, { timeoutMs, signal: clientGone(res) });
    send(res, limited(names, limit));
  });

  router.get(`${PROMETHEUS_API}/label/:name/values`, readForm, async (req, res) => {
    const params = new Params(req);
    const name = String(req.params['name']);
    if (!isValidLabelName(name)) throw new ApiError('bad_data', `invalid label name: ${quote(name)}`);
    const limit = limitParam(params);
    const range = rangeParams(params);
    const matchers = matchParams(params, false);
    const timeoutMs = timeoutParam(params);
    const values = await prometheus.labelValues(name, matchers, range, {
      timeoutMs,
      signal: clientGone(res),
    });
    send(res, limited(values, limit));
  });

  // What exporters said of each metric (scrapes' # TYPE/# HELP/# UNIT, remote writes' metadata).
  // As Prometheus: `limit` counts metrics, absent or negative is no limit, 0 answers none.
  router.get(`${PROMETHEUS_API}/metadata`, readForm, async (req, res) => {
    const params = new Params(req);
    // Prometheus 2.42 reads `limit` as a 64-bit integer (a sign allowed) and knows no
    // limit_per_metric; past what a LIMIT holds, every metric is wanted anyway.
    const limitText = params.get('limit').replace(/^\+/, '');
    if (
      limitText !== '' &&
      (!/^-?\d+$/.test(limitText) || BigInt(limitText) > 2n ** 63n - 1n || BigInt(limitText) < -(2n ** 63n))
    ) {
      throw invalidParam('limit', `cannot parse ${quote(params.get('limit'))} to a valid limit`);
    }
    const limit =
      limitText === '' || Number(limitText) < 0 || Number(limitText) > 2 ** 31
        ? undefined
        : Number(limitText);
    const metric = params.get('metric');
    // No stored name holds a NUL (Postgres' text refuses one): such a metric has no metadata.
    const found =
      limit === 0 || metric.includes('\0')
        ? new Map()
        : await prometheus.metadata({ metric: metric || undefined, limit });
    // One entry per metric is kept, as exporters last said it.
    const data: Record<string, StoredMetadata[]> = {};
    for (const [name, m] of found) data[name] = [m];
    send(res, { data });
  });

  router.get(`${PROMETHEUS_API}/status/buildinfo`, readForm, (_req, res) => {
    send(res, {
      data: {
        version: PROMETHEUS_COMPATIBLE_VERSION,
        revision: 'gpu-telemetry',
        branch: '',
        buildUser: '',
        buildDate: '',
        goVersion: '',
      },
    });
  });

  // What Grafana asks of a Prometheus data source beyond queries: exemplars (the query editor's
  // toggle) and the data source's own alerting and recording rules (its Alerting pages). This
  // store keeps no exemplars and evaluates no rules, so each answers as a Prometheus without them
  // does, after checking its parameters as Prometheus does.
  both('/query_exemplars', (req, res) => {
    const params = new Params(req);
    const startMs = timeParam(params, 'start', MIN_TIME_MS);
    const endMs = timeParam(params, 'end', MAX_TIME_MS);
    if (endMs < startMs) throw new ApiError('bad_data', 'end timestamp must not be before start timestamp');
    try {
      parseExpr(params.get('query'));
    } catch (error) {
      // Prometheus gives this one's parse error bare, not as an invalid parameter.
      if (error instanceof BadDataError) throw new ApiError('bad_data', error.message);
      throw error;
    }
    send(res, { data: [] });
  });

  router.get(`${PROMETHEUS_API}/rules`, readForm, (req, res) => {
    const type = new Params(req).get('type').toLowerCase();
    if (type !== '' && type !== 'alert' && type !== 'record')
      throw invalidParam('type', `not supported value ${quote(type)}`);
    send(res, { data: { groups: [] } });
  });

  router.get(`${PROMETHEUS_API}/alerts`, readForm, (_req, res) => {
    send(res, { data: { alerts: [] } });
  });

  router.use(prometheusErrors);
  return router;
}

/** Every failure of these routes in Prometheus' envelope: `{status: "error", errorType, error}`. */
const prometheusErrors: ErrorRequestHandler = (error: unknown, req, res, next) => {
  if (res.headersSent) {
    next(error);
    return;
  }
  let answer: ApiError;
  const segment = undecodableSegment(error);
  if (error instanceof ApiError) answer = error;
  else if (error instanceof PromQLError) answer = new ApiError(error.errorType, error.message);
  else if (error instanceof FormBodyError) answer = new ApiError('bad_data', error.message, error.status);
  else if (segment !== undefined)
    // The one parameter these paths hold is /label/{name}/values' name.
    answer = new ApiError(
      'bad_data',
      `invalid label name: ${JSON.stringify(segment)} is not percent-encoded UTF-8`,
    );
  else if (isDependencyFailure(error)) {
    req.log.warn({ err: error }, 'database unavailable');
    answer = new ApiError('unavailable', 'the database is unavailable; retry shortly');
    res.setHeader('Retry-After', '2');
  } else {
    req.log.error({ err: error }, 'PromQL request failed');
    answer = new ApiError('internal', `internal error (request ${req.id})`);
  }
  res.status(answer.status).json({ status: 'error', errorType: answer.errorType, error: answer.message });
};
