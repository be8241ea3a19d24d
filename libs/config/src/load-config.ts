import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { maskedUrl } from './masked-url';

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
  const cleaned = setValues(env);
  const fileProblems: string[] = [];
  const unreadable = new Set<string>();
  const names = schema instanceof z.ZodObject ? Object.keys(schema.shape as object) : [];
  for (const name of names) {
    const read = fromFile(name, cleaned);
    if (read === undefined) continue;
    if ('value' in read) {
      cleaned[name] = read.value;
      continue;
    }
    fileProblems.push(read.problem);
    if (read.unreadable) unreadable.add(name);
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

/**
 * One setting as loadConfig reads it: `name` from `env`, or the text of the file `<name>_FILE`
 * names, trailing newline removed; undefined when neither is set (empty values count as unset).
 * Throws a ConfigError when both are set or the file cannot be read.
 */
export function readSetting(name: string, env: Env = process.env): string | undefined {
  const cleaned = setValues(env);
  const read = fromFile(name, cleaned);
  if (read === undefined) return cleaned[name];
  if ('problem' in read) throw new ConfigError([read.problem]);
  return read.value;
}

/** `env` without its empty values, so `FOO=` reads as unset. */
function setValues(env: Env): Env {
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') cleaned[key] = value;
  }
  return cleaned;
}

/**
 * `name` from the file `<name>_FILE` names in `cleaned`: undefined when that is unset, else the
 * file's text, or the problem that stops it being used (`unreadable` when the file is at fault).
 */
function fromFile(
  name: string,
  cleaned: Env,
): { value: string } | { problem: string; unreadable: boolean } | undefined {
  const file = cleaned[`${name}_FILE`];
  if (file === undefined) return undefined;
  if (cleaned[name] !== undefined)
    return { problem: `${name} and ${name}_FILE are both set; set one`, unreadable: false };
  try {
    return { value: readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    return { problem: `${name}_FILE cannot be read (${code}: ${file})`, unreadable: true };
  }
}

/** Shows a rejected value without leaking secrets: keys and tokens hidden, URL passwords masked. */
function shown(name: string, value: string): string {
  if (/KEY|SECRET|PASSWORD|TOKEN/i.test(name)) return '(hidden)';
  return JSON.stringify(maskedUrl(value));
}
