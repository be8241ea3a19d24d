// Turns a service's JSON log line into one readable line, prefixed with the service name.
const COLORS = { gateway: 35, queue: 36, streamer: 32, collector: 33, simulator: 34 };
const LEVEL_COLORS = { trace: 90, debug: 90, info: 0, warn: 33, error: 31, fatal: 41 };
const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (useColor && code ? `\x1b[${code}m${text}\x1b[0m` : text);
const SKIP = new Set(['level', 'time', 'service', 'msg', 'pid', 'hostname', 'spanId']);

export function formatLine(label, line) {
  const prefix = paint(COLORS[label] ?? 0, label.padEnd(9));
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return `${prefix} ${line}`;
  }
  if (typeof entry !== 'object' || entry === null) return `${prefix} ${line}`;
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
  const level = String(entry.level ?? 'info');
  let text;
  if (entry.msg === 'request' && entry.method) {
    text = `${entry.method} ${entry.path} ${entry.status} ${entry.ms}ms`;
  } else {
    const extras = Object.entries(entry)
      .filter(([key]) => !SKIP.has(key) && key !== 'requestId' && key !== 'traceId')
      .map(([key, value]) => `${key}=${describe(value)}`);
    text = [entry.msg, ...extras].filter(Boolean).join(' ');
  }
  return `${prefix} ${paint(90, time)} ${paint(LEVEL_COLORS[level] ?? 0, level.padEnd(5))} ${text}`;
}

/** Errors by their message; other objects as compact JSON. */
function describe(value) {
  if (value && typeof value === 'object' && typeof value.message === 'string') {
    return JSON.stringify(value.code ? `${value.code}: ${value.message}` : value.message);
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
