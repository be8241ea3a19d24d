/**
 * Go's `strconv.FormatFloat(v, 'f', -1, 64)`, how Prometheus writes a sample value: the shortest
 * decimal that reads back to the same float, never in exponent form; `NaN`, `+Inf`, `-Inf`.
 */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Object.is(v, -0)) return '-0';
  const s = String(v);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const negative = s.startsWith('-');
  const mantissa = s.slice(negative ? 1 : 0, e);
  const exponent = Number(s.slice(e + 1));
  const dot = mantissa.indexOf('.');
  const digits = mantissa.replace('.', '');
  const pointAt = (dot < 0 ? mantissa.length : dot) + exponent;
  let out: string;
  if (pointAt <= 0) out = '0.' + '0'.repeat(-pointAt) + digits;
  else if (pointAt >= digits.length) out = digits + '0'.repeat(pointAt - digits.length);
  else out = digits.slice(0, pointAt) + '.' + digits.slice(pointAt);
  return negative ? '-' + out : out;
}

/**
 * How Prometheus writes a vector or matrix sample in its JSON (util/jsonutil MarshalValue): as
 * formatValue, but in Go's exponent form (`1.5e-07`, `1.2e+21`) below 1e-6 or from 1e21 on.
 * Scalars and count_values labels keep formatValue.
 */
export function formatSampleValue(v: number): string {
  const abs = Math.abs(v);
  if (abs === 0 || !(abs < 1e-6 || abs >= 1e21) || !Number.isFinite(v)) return formatValue(v);
  // JavaScript's shortest exponent form; Go writes the exponent with at least two digits.
  return v.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
}

/**
 * Go's `%v` of a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`), how Prometheus writes a number
 * in an error message: the shortest decimal, in exponent form below 1e-4 or from 1e6 on (`1e+20`).
 */
export function formatGoFloat(v: number): string {
  if (!Number.isFinite(v) || v === 0) return formatValue(v);
  const [mantissa = '', exponent = '0'] = v.toExponential().split('e');
  const exp = Number(exponent);
  if (exp >= -4 && exp < 6) return formatValue(v);
  return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/** Go's `%f` of a float64: six decimals, every digit of a large number (`1e+20` is 100000000000000000000.000000). */
export function formatGoFixed(v: number): string {
  if (!Number.isFinite(v)) return formatValue(v);
  // Past 1e21 a double is a whole number, which toFixed would write in exponent form.
  return Math.abs(v) < 1e21 ? v.toFixed(6) : `${BigInt(v)}.000000`;
}

/** Milliseconds to the API's seconds (a JSON number with up to three decimals). */
export function toApiTimestamp(ms: number): number {
  return ms / 1000;
}
