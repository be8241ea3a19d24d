import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `500ms`, `30s`, `5m`, `1h`, `7d` (or `0`) into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (text.trim() === '0') return 0;
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNITS[match[2]]);
}

/**
 * A duration variable such as `COLLECT_INTERVAL=30s`, parsed to milliseconds, from `min` to `max`;
 * `orZero` also takes 0 below `min` (for variables where 0 means "unset, use the derived value").
 */
export function duration(defaultValue: string, opts: { min?: string; max?: string; orZero?: boolean } = {}) {
  const min = opts.min === undefined ? 0 : (parseDuration(opts.min) ?? 0);
  const max = opts.max === undefined ? Infinity : (parseDuration(opts.max) ?? Infinity);
  return z
    .string()
    .default(defaultValue)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration such as 500ms, 30s, 5m, 1h or 7d' });
        return z.NEVER;
      }
      if ((ms < min && !(opts.orZero && ms === 0)) || ms > max) {
        ctx.addIssue({
          code: 'custom',
          message: `must be ${opts.orZero ? '0 or ' : ''}between ${opts.min ?? '0'} and ${opts.max ?? 'unbounded'}`,
        });
        return z.NEVER;
      }
      return ms;
    });
}

/** An integer variable with bounds. */
export function int(defaultValue: number, min: number, max: number) {
  return z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(defaultValue);
}

export function port(defaultValue: number) {
  return int(defaultValue, 0, 65_535);
}

/** `true/false/1/0/yes/no/on/off`, case-insensitive. */
export function flag(defaultValue: boolean) {
  return z
    .string()
    .default(String(defaultValue))
    .transform((text, ctx) => {
      const value = text.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(value)) return true;
      if (['false', '0', 'no', 'off'].includes(value)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });
}

/** Comma-separated list; blanks dropped. */
export function list() {
  return z
    .string()
    .default('')
    .transform((text) =>
      text
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean),
    );
}

export const postgresUrl = z
  .string({ message: 'is required' })
  .refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL');

export const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    message: 'must be one of fatal, error, warn, info, debug, trace, silent',
  })
  .default('info');

/**
 * A shared secret: at least 32 characters, no whitespace (it travels in an Authorization header).
 * `openssl rand -base64 32` or `node -e "console.log(crypto.randomBytes(32).toString('base64url'))"`.
 */
export function secret() {
  return z
    .string({ message: 'is required' })
    .min(32, 'must be at least 32 characters')
    .regex(/^\S+$/, 'must not contain whitespace');
}

/** Variables every service reads. */
export function serviceEnv(defaultPort: number) {
  return {
    PORT: port(defaultPort),
    /**
     * The address to listen on. Unset or empty: every address, IPv6 and IPv4 (IPv4 alone where the
     * host has no IPv6), so one image serves IPv4, IPv6 and dual-stack clusters.
     */
    HOST: z.string().optional(),
    DATABASE_URL: postgresUrl,
    DATABASE_POOL_SIZE: int(10, 1, 200),
    LOG_LEVEL: logLevel,
    SHUTDOWN_TIMEOUT: duration('10s', { max: '5m' }),
    /**
     * The credential the services present to each other (`Authorization: Bearer <token>`): queue,
     * streamer and collector answer nothing but /healthz, /readyz and /metrics without it.
     */
    SERVICE_TOKEN: secret(),
    /** The token being rotated out: still accepted (never sent) until every replica has the new one. */
    SERVICE_TOKEN_PREVIOUS: secret().optional(),
  };
}

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** A size such as `256kb`, `16mb` or a plain byte count, parsed to bytes. */
export function bytes(defaultValue: string) {
  return z
    .string()
    .default(defaultValue)
    .transform((text, ctx) => {
      const match = /^(\d+)\s*(b|kb|mb|gb)?$/i.exec(text.trim());
      if (!match) {
        ctx.addIssue({ code: 'custom', message: 'must be a size such as 256kb, 16mb or a number of bytes' });
        return z.NEVER;
      }
      return Number(match[1]) * BYTE_UNITS[(match[2] ?? 'b').toLowerCase()];
    });
}
