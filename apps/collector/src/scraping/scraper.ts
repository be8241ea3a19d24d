import { lookup } from 'node:dns';
import { isIP } from 'node:net';
import type { TelemetrySample } from '@gpu-telemetry/model';
import { Agent, type Dispatcher, request } from 'undici';
import { ExpositionParser, type ParseError } from '../parsing/exposition-parser';
import { toTelemetrySample } from '../parsing/to-telemetry';
import { isBlockedAddress, type TargetPolicy } from '../targets/target-url';

export interface ScrapeResult {
  samples: TelemetrySample[];
  /** Lines that could not be parsed (the scrape still counts). */
  parseErrors: number;
  firstParseError?: ParseError;
  /** Samples without a GPU UUID label (not about a GPU). */
  skipped: number;
  bytes: number;
  durationMs: number;
}

export type ScrapeOutcome =
  'success' | 'timeout' | 'http_error' | 'connection_error' | 'parse_error' | 'too_large' | 'blocked';

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
 * Scrapes one target: streams the body through the parser as it arrives, within `timeoutMs` for
 * the whole exchange and `maxBytes` for the body. A hanging or huge target costs its own scrape
 * and nothing else.
 */
export async function scrapeTarget(
  url: string,
  options: {
    dispatcher: Dispatcher;
    timeoutMs: number;
    maxBytes: number;
    policy: TargetPolicy;
    now?: () => number;
  },
): Promise<ScrapeResult> {
  const started = performance.now();
  const scrapedAt = (options.now ?? Date.now)();
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
  const samples: TelemetrySample[] = [];
  let skipped = 0;
  let firstParseError: ParseError | undefined;
  let bytes = 0;
  try {
    if (response.statusCode !== 200) {
      const location = response.headers['location'];
      throw new ScrapeError(
        'http_error',
        `HTTP ${response.statusCode}${location ? ` (redirect to ${String(location)} not followed)` : ''}`,
      );
    }
    const contentType = String(response.headers['content-type'] ?? '');
    const parser = new ExpositionParser({
      format: contentType.includes('openmetrics') ? 'openmetrics' : 'prometheus',
      onSample: (sample) => {
        const telemetry = toTelemetrySample(sample, scrapedAt);
        if (telemetry) samples.push(telemetry);
        else skipped++;
      },
      onError: (error) => (firstParseError ??= error),
    });
    response.body.setEncoding('utf8');
    for await (const chunk of response.body as AsyncIterable<string>) {
      bytes += Buffer.byteLength(chunk);
      if (bytes > options.maxBytes)
        throw new ScrapeError('too_large', `body larger than ${options.maxBytes} bytes`);
      parser.push(chunk);
    }
    parser.end();
    if (parser.samples === 0 && parser.errors > 0) {
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
      bytes,
      durationMs: performance.now() - started,
    };
  } catch (error) {
    throw classify(error, signal);
  } finally {
    // An abort after we stopped reading must not surface as an unhandled stream error.
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
