/** A queue topic name, as the queue accepts it. */
const TOPIC_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** What a key may be limited to: a topic name, or a name prefix ending in `*` (`jobs.*`). */
export const TOPIC_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}\*?$/;

/** Which topics a key limited to `patterns` may reach. */
export interface TopicLimit {
  readonly patterns: readonly string[];
  allows(topic: string): boolean;
}

/**
 * `telemetry` allows that topic only; `jobs.*` allows every topic whose name starts with `jobs.`.
 * Only valid topic names are ever allowed, so an encoded slash or a dot segment matches nothing.
 */
export function topicLimit(patterns: readonly string[]): TopicLimit {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return {
    patterns,
    allows: (topic) =>
      TOPIC_NAME.test(topic) && (exact.has(topic) || prefixes.some((prefix) => topic.startsWith(prefix))),
  };
}
