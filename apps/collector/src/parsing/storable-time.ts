/** How far ahead of the clock a sample time may be: the streamer refuses later ones. */
export const MAX_FUTURE_MS = 24 * 3_600_000;

/**
 * Why the store cannot take a sample at `timestampMs`, or undefined when it can: more than a day
 * ahead of `nowMs`, or older than what it keeps (`retentionMs`, 0 keeping everything). The
 * streamer refuses a message holding such a time, so it is left out before it costs one.
 */
export function unstorableTime(timestampMs: number, nowMs: number, retentionMs = 0): string | undefined {
  if (timestampMs > nowMs + MAX_FUTURE_MS) return 'is more than a day in the future';
  if (retentionMs > 0 && timestampMs < nowMs - retentionMs) return 'is older than TELEMETRY_RETENTION';
  return undefined;
}
