import { lookup } from 'node:dns';
import { isIP } from 'node:net';
import {
  isScrapedSample,
  type MetricMetadata,
  type ScrapedSample,
  scrapedSample,
} from '@gpu-telemetry/model';
import { Agent, type Dispatcher, request } from 'undici';
import { fieldErrors } from '@gpu-telemetry/service-kit';
import { ExpositionParser, type ParseError } from '../parsing/exposition-parser';
import { ScrapeMetadata } from '../parsing/scrape-metadata';
import { unstorableTime } from '../parsing/storable-time';
import { toScrapedSample } from '../parsing/to-telemetry';
import { isBlockedAddress, type TargetPolicy } from '../targets/target-url';
import { EventLoopBudget } from './event-loop-budget';

export interface ScrapeResult {
  /** GPU samples handed to `onSample`. */
  samples: number;
  /** Lines that could not be parsed (the scrape still counts). */
  parseErrors: number;
  firstParseError?: ParseError;
  /** Samples without a GPU UUID label (not about a GPU). */
  skipped: number;
  /**
   * GPU samples the store could not take (a `gpu` index past 65535, more than 64 labels besides
   * the GPU's, a name or value too long): left out, so that they do not cost the whole message
   * they would travel in. The first one's problem, field named, in `firstUnstorable`.
   */
  unstorable: number;
  firstUnstorable?: string;
  bytes: number;
  /** Type, help and unit of the metric families whose samples were kept, in name order. */
  metadata: MetricMetadata[];
}

export type ScrapeOutcome =
  | 'success'
  | 'timeout'
  | 'http_error'
  | 'connection_error'
  | 'parse_error'
  | 'blocked'
  // A limit broken: the body (too_large), samples per scrape, labels per sample, line length.
  | 'too_large'
  | 'sample_limit'
  | 'label_limit'
  | 'line_too_long';

/** Longest line read from a target: dcgm-exporter's are a few hundred characters. */
const MAX_LINE_LENGTH = 64 * 1024;

/** The body is parsed in steps of at most this many characters, so each step is short. */
const STEP_CHARACTERS = 16 * 1024;

export class ScrapeError extends Error {
  constructor(
    readonly outcome: ScrapeOutcome,
    message: string,
  ) {
    super(message);
    this.name = 'ScrapeError';
  }
}

/**
 * The connection pool scrapes go through. Its DNS lookup refuses metadata and link-local
 * addresses (unless allowed), so a hostname that resolves there, or starts to (DNS rebinding),
 * is refused at connect time, not just when the URL was registered. Redirects are never followed.
 */
export function createScrapeAgent(policy: TargetPolicy): Agent {
  return new Agent({
    connections: 2,
    keepAliveTimeout: 20_000,
    connect: {
      lookup(hostname, options, callback) {
        lookup(hostname, { ...options, all: true }, (error, addresses) => {
          if (error) return callback(error, '', 4);
          const list = addresses as unknown as { address: string; family: number }[];
          if (!policy.allowLinkLocal && list.some((a) => isBlockedAddress(a.address))) {
            return callback(
              Object.assign(new Error(`${hostname} resolves to a blocked address`), { code: 'EBLOCKED' }),
              '',
              4,
            );
          }
          if ((options as { all?: boolean }).all)
            return (callback as unknown as (e: null, a: typeof list) => void)(null, list);
          const first = list[0];
          if (!first) return callback(new Error(`${hostname} has no address`), '', 4);
          callback(null, first.address, first.family);
        });
      },
    },
  });
}

const ACCEPT = 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1';

/**
 * Scrapes one target: streams the body through the parser as it arrives, in short steps that
 * share the event loop (`budget`), handing each GPU sample to `onSample` as its line is read.
 * Limits hold while streaming: the exchange within `timeoutMs`, the body within `maxBytes`, at most
 * `sampleLimit` samples and `labelLimit` labels per sample, lines within MAX_LINE_LENGTH. The first
 * limit broken stops the read and closes the connection, and the scrape fails; like Prometheus,
 * the caller then stores nothing of it (samples already handed over are to be dropped).
 */
export async function scrapeTarget(
  url: string,
  options: {
    dispatcher: Dispatcher;
    timeoutMs: number;
    maxBytes: number;
    sampleLimit: number;
    labelLimit: number;
    policy: TargetPolicy;
    onSample(sample: ScrapedSample): void;
    budget?: EventLoopBudget;
    now?: () => number;
    /** How long the store keeps samples (TELEMETRY_RETENTION; 0 keeps all): older ones are left out. */
    retentionMs?: number;
  },
): Promise<ScrapeResult> {
  const scrapedAt = (options.now ?? Date.now)();
  const budget = options.budget ?? new EventLoopBudget();
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!options.policy.allowLinkLocal && isIP(host) && isBlockedAddress(host)) {
    throw new ScrapeError('blocked', `${host} is a link-local or metadata address`);
  }
  const signal = AbortSignal.timeout(options.timeoutMs);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      dispatcher: options.dispatcher,
      headers: { accept: ACCEPT, 'user-agent': 'gpu-telemetry-collector' },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      signal,
    });
  } catch (error) {
    throw classify(error, signal);
  }
  let samples = 0;
  let skipped = 0;
  let unstorable = 0;
  let firstUnstorable: string | undefined;
  let firstParseError: ParseError | undefined;
  let bytes = 0;
  /** The first limit broken; checked after every step. */
  let refused: ScrapeError | undefined;
  try {
    if (response.statusCode !== 200) {
      const location = response.headers['location'];
      throw new ScrapeError(
        'http_error',
        `HTTP ${response.statusCode}${location ? ` (redirect to ${String(location)} not followed)` : ''}`,
      );
    }
    if (Number(response.headers['content-length']) > options.maxBytes)
      throw new ScrapeError('too_large', `body larger than ${options.maxBytes} bytes`);
    const contentType = String(response.headers['content-type'] ?? '');
    const metadata = new ScrapeMetadata(options.sampleLimit);
    const parser = new ExpositionParser({
      format: contentType.includes('openmetrics') ? 'openmetrics' : 'prometheus',
      maxLineLength: MAX_LINE_LENGTH,
      maxLabels: options.labelLimit,
      onSample: (sample) => {
        if (refused) return;
        if (samples + skipped + unstorable >= options.sampleLimit) {
          refused = new ScrapeError('sample_limit', `more than ${options.sampleLimit} samples`);
          return;
        }
        const telemetry = toScrapedSample(sample, scrapedAt);
        if (!telemetry) {
          skipped++;
          return;
        }
        // An exporter's own timestamp the store would refuse is left out like any unstorable sample.
        const late =
          sample.timestampMs === undefined
            ? undefined
            : unstorableTime(sample.timestampMs, scrapedAt, options.retentionMs);
        if (late) {
          unstorable++;
          firstUnstorable ??= `${sample.name}: timestamp ${sample.timestampMs} ${late}`;
          return;
        }
        if (!isScrapedSample(telemetry)) {
          const checked = scrapedSample.safeParse(telemetry);
          if (!checked.success) {
            unstorable++;
            firstUnstorable ??= `${sample.name}: ${fieldErrors(checked.error)
              .map((e) => `${e.field} ${e.message}`)
              .join('; ')}`;
            return;
          }
        }
        samples++;
        metadata.sampleKept(sample.name);
        options.onSample(telemetry);
      },
      onMetadata: (m) => metadata.note(m),
      onError: (error) => {
        firstParseError ??= error;
        if (error.limit === 'labels') {
          refused ??= new ScrapeError(
            'label_limit',
            `a sample has more than ${options.labelLimit} labels (line ${error.line})`,
          );
        } else if (error.limit === 'line_length') {
          refused ??= new ScrapeError(
            'line_too_long',
            `line ${error.line} is longer than ${MAX_LINE_LENGTH} characters`,
          );
        }
      },
    });
    // Strict, as Prometheus reads a body: bytes that are no UTF-8 fail the scrape rather than
    // becoming U+FFFD, which would make two label values one series and lose a sample.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const decode = (chunk?: Buffer): string => {
      try {
        return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
      } catch {
        throw new ScrapeError('parse_error', `the body is not valid UTF-8 (within its first ${bytes} bytes)`);
      }
    };
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > options.maxBytes)
        throw new ScrapeError('too_large', `body larger than ${options.maxBytes} bytes`);
      const text = decode(chunk);
      for (let at = 0; at < text.length; at += STEP_CHARACTERS) {
        await budget.turn();
        parser.push(text.length <= STEP_CHARACTERS ? text : text.slice(at, at + STEP_CHARACTERS));
        if (refused) throw refused;
      }
    }
    parser.push(decode());
    parser.end();
    if (refused) throw refused;
    if (samples + skipped + unstorable === 0 && parser.errors > 0) {
      throw new ScrapeError(
        'parse_error',
        `not the Prometheus text format: line ${firstParseError?.line}: ${firstParseError?.message}`,
      );
    }
    return {
      samples,
      parseErrors: parser.errors,
      firstParseError,
      skipped,
      unstorable,
      ...(firstUnstorable === undefined ? {} : { firstUnstorable }),
      bytes,
      metadata: metadata.entries(),
    };
  } catch (error) {
    throw classify(error, signal);
  } finally {
    // Closes the connection when the body was not read to its end (a limit, a timeout). An abort
    // after we stopped reading must not surface as an unhandled stream error.
    response.body.on('error', () => undefined);
    response.body.destroy();
  }
}

function classify(error: unknown, signal: AbortSignal): ScrapeError {
  if (error instanceof ScrapeError) return error;
  const code = (error as { code?: string }).code ?? '';
  const message = error instanceof Error ? error.message : String(error);
  if (signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new ScrapeError('timeout', 'timed out');
  }
  if (code === 'EBLOCKED' || /blocked address/.test(message)) return new ScrapeError('blocked', message);
  return new ScrapeError('connection_error', code ? `${code}: ${message}` : message);
}
