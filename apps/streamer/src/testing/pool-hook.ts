import type { Pool, PoolClient } from 'pg';

/**
 * The pool, with `hook` run once right after the first statement whose text `matches` has
 * answered, before the caller sees its answer: a way to put a concurrent change at an exact point
 * of a transaction (right after a snapshot is taken, after rows are locked).
 */
export function poolWithHook(
  pool: Pool,
  matches: (text: string) => boolean,
  hook: () => Promise<unknown>,
): Pool {
  let armed = true;
  const wrap = (client: PoolClient): PoolClient =>
    new Proxy(client, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          // Streams (COPY) go through untouched: query() returns them, not a promise.
          const result = (target.query as (...a: unknown[]) => unknown)(...args);
          const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
          if (!armed || !text || !matches(text)) return result;
          armed = false;
          return (result as Promise<unknown>).then(async (answer) => {
            await hook();
            return answer;
          });
        };
      },
    });
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'connect') return async () => wrap(await target.connect());
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
