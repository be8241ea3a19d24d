/** Why a value was refused: words that follow the value in an error message. */
export type ValueProblem = 'is not a number' | 'is out of range';

const NOT_A_NUMBER: ValueProblem = 'is not a number';
const OUT_OF_RANGE: ValueProblem = 'is out of range';

/**
 * Reads a sample value as Prometheus does: Go's `strconv.ParseFloat`, less the hexadecimal and
 * digit-separator forms Prometheus refuses (any `p`, `P` or `_`). That is an optional sign, digits
 * with an optional fraction (`1`, `1.`, `.5`), an optional exponent (`e-3`), or `NaN`, `Inf`,
 * `Infinity` (signed, except NaN), in any case; a finite form that rounds past float64 is refused
 * as out of range, as ParseFloat does.
 *
 * One pass, no backtracking: text of n characters costs n steps, however it is built.
 */
export function readSampleValue(text: string): number | ValueProblem {
  const end = text.length;
  let i = 0;
  let c = text.charCodeAt(0); // NaN past the end: no comparison below holds for it
  if (c === 43 /* + */ || c === 45 /* - */) c = text.charCodeAt(++i);
  let digits = 0;
  while (c >= 48 && c <= 57) {
    digits++;
    c = text.charCodeAt(++i);
  }
  if (c === 46 /* . */) {
    c = text.charCodeAt(++i);
    while (c >= 48 && c <= 57) {
      digits++;
      c = text.charCodeAt(++i);
    }
  }
  if (digits === 0) return special(text);
  if (c === 101 /* e */ || c === 69 /* E */) {
    c = text.charCodeAt(++i);
    if (c === 43 || c === 45) c = text.charCodeAt(++i);
    const exponent = i;
    while (c >= 48 && c <= 57) c = text.charCodeAt(++i);
    if (i === exponent) return NOT_A_NUMBER;
  }
  if (i !== end) return NOT_A_NUMBER;
  // The text is now exactly a decimal literal, which Number() reads the same way, correctly
  // rounded (and in linear time: digits past the 800th only shift the exponent).
  const value = Number(text);
  return value === Infinity || value === -Infinity ? OUT_OF_RANGE : value;
}

/** The same rules, undefined for anything refused. */
export function parseValue(text: string): number | undefined {
  const value = readSampleValue(text);
  return typeof value === 'number' ? value : undefined;
}

function special(text: string): number | ValueProblem {
  const signed = text.charCodeAt(0) === 43 || text.charCodeAt(0) === 45 ? 1 : 0;
  const word = text.length - signed;
  if (word === 3 && !signed && sameLetters(text, 0, 'nan')) return NaN;
  if ((word === 3 || word === 8) && sameLetters(text, signed, 'infinity')) {
    return text.charCodeAt(0) === 45 ? -Infinity : Infinity;
  }
  return NOT_A_NUMBER;
}

/** Whether text from `start` to its end is the start of `lower`, ASCII letters in any case. */
function sameLetters(text: string, start: number, lower: string): boolean {
  for (let i = start; i < text.length; i++) {
    if ((text.charCodeAt(i) | 0x20) !== lower.charCodeAt(i - start)) return false;
  }
  return true;
}
