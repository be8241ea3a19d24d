/** How far ahead of the clock a sample time may be: the streamer refuses later ones. */
const MAX_FUTURE_MS = 24 * 3_600_000;

/**
 * The sample times the store takes at `nowMs` (ms): from `retentionMs` back (0 keeping everything,
 * from 1970 on, what the exposition format and remote write can say) to a day ahead.
 */
export function storableTimes(nowMs: number, retentionMs = 0): { minMs: number; maxMs: number } {
  return { minMs: retentionMs > 0 ? nowMs - retentionMs : 0, maxMs: nowMs + MAX_FUTURE_MS };
}

/**
 * Why the store cannot take a sample at `timestampMs`, or undefined when it can: more than a day
 * ahead of `nowMs`, or older than what it keeps (`retentionMs`, 0 keeping everything). The
 * streamer refuses a message holding such a time, so it is left out before it costs one.
 */
export function unstorableTime(timestampMs: number, nowMs: number, retentionMs = 0): string | undefined {
  const { minMs, maxMs } = storableTimes(nowMs, retentionMs);
  if (timestampMs > maxMs) return 'is more than a day in the future';
  if (retentionMs > 0 && timestampMs < minMs) return 'is older than TELEMETRY_RETENTION';
  return undefined;
}
