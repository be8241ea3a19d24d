import { z } from 'zod';

/** Thrown when the environment does not satisfy a service's schema; lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Parses `env` with `schema`. Empty strings count as unset, so `FOO=` in a .env file falls back to
 * the default instead of failing as an invalid value.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): z.output<S> {
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const name = issue.path.join('.') || '(environment)';
      const value = typeof issue.path[0] === 'string' ? cleaned[issue.path[0]] : undefined;
      if (value === undefined) return `${name} is required`;
      return `${name} ${issue.message} (got ${shown(name, value)})`;
    }),
  );
}

/** Shows a rejected value without leaking secrets: keys and tokens hidden, URL passwords masked. */
function shown(name: string, value: string): string {
  if (/KEY|SECRET|PASSWORD|TOKEN/i.test(name)) return '(hidden)';
  return JSON.stringify(value.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1***@'));
}
