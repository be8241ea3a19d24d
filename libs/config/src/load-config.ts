import { readFileSync } from 'node:fs';
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
 * the default instead of failing as an invalid value. Any variable of the schema can instead be
 * read from a file named by `<NAME>_FILE` (mounted Docker and Kubernetes secrets), trailing
 * newline removed; setting both is an error.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): z.output<S> {
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') cleaned[key] = value;
  }
  const fileProblems: string[] = [];
  const unreadable = new Set<string>();
  const names = schema instanceof z.ZodObject ? Object.keys(schema.shape as object) : [];
  for (const name of names) {
    const file = cleaned[`${name}_FILE`];
    if (file === undefined) continue;
    if (cleaned[name] !== undefined) {
      fileProblems.push(`${name} and ${name}_FILE are both set; set one`);
      continue;
    }
    try {
      cleaned[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      unreadable.add(name);
      fileProblems.push(
        `${name}_FILE cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}: ${file})`,
      );
    }
  }
  const result = schema.safeParse(cleaned);
  if (result.success && fileProblems.length === 0) return result.data as z.output<S>;
  const issues = result.success
    ? []
    : result.error.issues.filter((issue) => !unreadable.has(String(issue.path[0])));
  throw new ConfigError([
    ...fileProblems,
    ...issues.map((issue) => {
      const name = issue.path.join('.') || '(environment)';
      const value = typeof issue.path[0] === 'string' ? cleaned[issue.path[0]] : undefined;
      if (value === undefined) return `${name} is required`;
      return `${name} ${issue.message} (got ${shown(name, value)})`;
    }),
  ]);
}

/** Shows a rejected value without leaking secrets: keys and tokens hidden, URL passwords masked. */
function shown(name: string, value: string): string {
  if (/KEY|SECRET|PASSWORD|TOKEN/i.test(name)) return '(hidden)';
  return JSON.stringify(value.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1***@'));
}
