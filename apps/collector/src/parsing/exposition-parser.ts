import { MAX_TIMESTAMP_MS } from '@gpu-telemetry/model';
import { readSampleValue } from './sample-value';

/** One sample line, parsed. */
export interface ExpositionSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carried a timestamp. */
  timestampMs?: number;
}

/** A `# HELP`, `# TYPE` or `# UNIT` line: what the exporter says of a metric family. */
export interface ExpositionMetadata {
  /** The metric family's name. */
  name: string;
  kind: 'help' | 'type' | 'unit';
  /** The help text unescaped (`\\\\`, `\\n`), or the type or unit as written. */
  text: string;
}

export interface ParseError {
  line: number;
  message: string;
  text: string;
  /** Set when the line broke a limit rather than the syntax. */
  limit?: ParseLimit;
}

/** The limits a line can break: its length, or its number of labels. */
export type ParseLimit = 'line_length' | 'labels';

export type ExpositionFormat = 'prometheus' | 'openmetrics';

export interface ParserOptions {
  /** OpenMetrics timestamps are seconds; Prometheus text timestamps are milliseconds. */
  format?: ExpositionFormat;
  /** Longest line accepted; longer lines are errors (a guard against garbage bodies). */
  maxLineLength?: number;
  /** Most labels on one sample; a sample with more is an error, found without reading them all. */
  maxLabels?: number;
  /** Reads `__name__` in the braces as a label like any other (a label set alone, as in labels_raw). */
  nameLabel?: boolean;
  onSample(sample: ExpositionSample): void;
  onMetadata?(metadata: ExpositionMetadata): void;
  onError?(error: ParseError): void;
}

/** Error text and messages are cut to this length: a hostile line must not fill the logs. */
const MAX_ERROR_TEXT = 120;

/**
 * A streaming parser for the Prometheus text format (0.0.4) and OpenMetrics 1.0, the formats
 * dcgm-exporter serves. Feed it the body chunk by chunk as it arrives; it emits each sample as soon
 * as its line is complete, and never holds more than one partial line.
 *
 * What real exporters send, all handled: `# HELP` / `# TYPE` / other comments, OpenMetrics `# EOF`,
 * empty label values (`container=""`), escaped `\\`, `\"` and `\n` in label values, `NaN`, `+Inf`,
 * `-Inf`, optional timestamps, trailing commas in label sets, quoted (UTF-8) metric names, and a
 * bad line here and there (e.g. `... ERROR - FAILED TO CONVERT TO STRING` as a value): a bad line is
 * reported and skipped, the rest of the scrape still counts.
 *
 * Its cost is linear in the body whatever the body is: values are read by `readSampleValue` in one
 * pass, a line is searched for its end only as its pieces arrive, and a line over `maxLineLength` or
 * a sample over `maxLabels` is reported (marked with the limit it broke) without reading further.
 */
export class ExpositionParser {
  /** The start of a line whose end has not arrived yet, in pieces (joined once, when it ends). */
  private partial: string[] = [];
  private partialLength = 0;
  /** Inside a line already reported as too long: dropped up to its end. */
  private skipping = false;
  private lineNumber = 0;
  private ended = false;
  private readonly maxLineLength: number;
  private readonly maxLabels: number;
  /** Lines reported as errors so far. */
  errors = 0;
  /** True once OpenMetrics `# EOF` was seen; later lines are errors. */
  private sawEof = false;

  constructor(private readonly options: ParserOptions) {
    this.maxLineLength = options.maxLineLength ?? 64 * 1024;
    this.maxLabels = options.maxLabels ?? Infinity;
  }

  /**
   * Parses every line the chunk completes. Only the new chunk is searched for line ends, so a
   * line that arrives a byte at a time costs its length, not its length squared.
   */
  push(chunk: string): void {
    let start = 0;
    let newline = chunk.indexOf('\n');
    if (this.skipping) {
      if (newline === -1) return;
      this.skipping = false;
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    } else if (this.partialLength > 0 && newline !== -1) {
      this.partial.push(chunk.slice(0, newline));
      const line = this.partial.join('');
      this.partial = [];
      this.partialLength = 0;
      this.line(line);
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    }
    for (; newline !== -1; newline = chunk.indexOf('\n', start)) {
      this.line(chunk.slice(start, newline));
      start = newline + 1;
    }
    if (start === chunk.length) return;
    const rest = chunk.length - start;
    if (this.partialLength + rest > this.maxLineLength) {
      // Report once, and do not buffer a runaway line.
      const head = (this.partial.join('') + chunk.slice(start, start + MAX_ERROR_TEXT)).slice(
        0,
        MAX_ERROR_TEXT,
      );
      this.partial = [];
      this.partialLength = 0;
      this.skipping = true;
      this.lineNumber++;
      this.error(head, `line longer than ${this.maxLineLength} characters`, 'line_length');
      return;
    }
    this.partial.push(start === 0 ? chunk : chunk.slice(start));
    this.partialLength += rest;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.partialLength > 0 && !this.skipping) this.line(this.partial.join(''));
    this.partial = [];
    this.partialLength = 0;
  }

  private line(raw: string): void {
    this.lineNumber++;
    const line = raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw; // tolerate CRLF
    if (line.length > this.maxLineLength) {
      this.error(line, `line longer than ${this.maxLineLength} characters`, 'line_length');
      return;
    }
    let i = 0;
    while (i < line.length && (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9)) i++;
    if (i === line.length) return;
    if (line.charCodeAt(i) === 35 /* # */) {
      // `# EOF` ends an OpenMetrics body; in the Prometheus text format it is a comment.
      if (this.options.format === 'openmetrics' && line.startsWith('# EOF', i) && line.length - i === 5)
        this.sawEof = true;
      else if (this.options.onMetadata && !this.sawEof) this.comment(line, i);
      return;
    }
    if (this.sawEof) {
      this.error(line, 'content after # EOF');
      return;
    }
    const problem = this.sample(line, i);
    if (typeof problem === 'string') this.error(line, problem);
    else if (problem) this.error(line, problem.message, problem.limit);
  }

  /**
   * `# HELP name text`, `# TYPE name type`, `# UNIT name unit`, as Prometheus reads them (blanks
   * between the parts); any other comment, or one of these without a name, says nothing.
   */
  private comment(line: string, hash: number): void {
    let i = skipSpaces(line, hash + 1);
    // `#HELP`, with no blank after the `#`, is a plain comment to Prometheus.
    if (i === hash + 1) return;
    const keyword = line.slice(i, i + 4);
    // UNIT is OpenMetrics'; in the Prometheus text format it is a comment like any other.
    const openMetrics = this.options.format === 'openmetrics';
    const kind =
      keyword === 'HELP'
        ? 'help'
        : keyword === 'TYPE'
          ? 'type'
          : keyword === 'UNIT' && openMetrics
            ? 'unit'
            : null;
    if (!kind) return;
    i += 4;
    const afterKeyword = skipSpaces(line, i);
    if (afterKeyword === i) return;
    const nameEnd = scanName(line, afterKeyword, true);
    if (nameEnd === afterKeyword) return;
    const textStart = skipSpaces(line, nameEnd);
    if (textStart === nameEnd && nameEnd < line.length) return; // the name runs into something else
    const rest = line.slice(textStart);
    this.options.onMetadata?.({
      name: line.slice(afterKeyword, nameEnd),
      kind,
      text: kind === 'help' ? unescapeHelp(rest, openMetrics) : rest.trimEnd(),
    });
  }

  /** Parses one sample line; returns what is wrong with it, or undefined. */
  private sample(line: string, start: number): string | { message: string; limit: ParseLimit } | undefined {
    let i = start;
    let name: string | undefined;
    const labels: Record<string, string> = {};
    let labelCount = 0;
    const c0 = line.charCodeAt(i);
    if (c0 !== 123 /* { */) {
      const nameEnd = scanName(line, i, true);
      if (nameEnd === i) return 'expected a metric name';
      name = line.slice(i, nameEnd);
      i = nameEnd;
    }
    if (line.charCodeAt(i) === 123) {
      i++;
      for (;;) {
        i = skipSpaces(line, i);
        if (line.charCodeAt(i) === 125 /* } */) {
          i++;
          break;
        }
        let key: string;
        if (line.charCodeAt(i) === 34 /* " */) {
          const quoted = readQuoted(line, i);
          if (!quoted) return 'unterminated quoted string';
          i = skipSpaces(line, quoted.end);
          if (line.charCodeAt(i) !== 61 /* = */) {
            // A quoted name alone is the metric name (OpenMetrics / Prometheus 3 UTF-8 names).
            if (name !== undefined) return 'two metric names';
            name = quoted.value;
            if (line.charCodeAt(i) === 44) i++;
            continue;
          }
          key = quoted.value;
        } else {
          const keyEnd = scanName(line, i, false);
          if (keyEnd === i) return `expected a label name at column ${i + 1}`;
          key = line.slice(i, keyEnd);
          i = skipSpaces(line, keyEnd);
          if (line.charCodeAt(i) !== 61) return `expected "=" after label ${key}`;
        }
        i = skipSpaces(line, i + 1);
        if (line.charCodeAt(i) !== 34) return `expected a quoted value for label ${key}`;
        const value = readQuoted(line, i);
        if (!value) return `unterminated value for label ${key}`;
        // `__name__` is the metric name, written before the braces (or quoted within them): in the
        // braces it is a second one, refused as Prometheus refuses any label name given twice.
        if (key === '__name__' && !this.options.nameLabel)
          return `label ${key} repeated: the metric name is written before the braces`;
        // Reserved in the Prometheus data model (remote write refuses them too); __proto__ would
        // also be lost to the object's setter, making two series one.
        if (key.startsWith('__') && key !== '__name__')
          return `label ${key}: names beginning with __ are reserved`;
        if (Object.prototype.hasOwnProperty.call(labels, key)) return `label ${key} repeated`;
        if (++labelCount > this.maxLabels)
          return { message: `more than ${this.maxLabels} labels`, limit: 'labels' };
        labels[key] = value.value;
        i = skipSpaces(line, value.end);
        const next = line.charCodeAt(i);
        if (next === 44 /* , */) {
          i++;
          continue;
        }
        if (next === 125) {
          i++;
          break;
        }
        return `expected "," or "}" after label ${key}`;
      }
    }
    if (name === undefined) return 'missing metric name';
    if (i < line.length && line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9)
      return 'expected a space before the value';
    i = skipSpaces(line, i);
    let valueEnd = i;
    while (valueEnd < line.length && line.charCodeAt(valueEnd) !== 32 && line.charCodeAt(valueEnd) !== 9)
      valueEnd++;
    const valueText = line.slice(i, valueEnd);
    if (!valueText) return 'missing value';
    const value = readSampleValue(valueText);
    if (typeof value !== 'number') return `value ${JSON.stringify(valueText.slice(0, 40))} ${value}`;
    let timestampMs: number | undefined;
    i = skipSpaces(line, valueEnd);
    // OpenMetrics exemplars start with " # ", after the timestamp or, without one, the value;
    // dcgm-exporter sends none, but they are valid.
    if (i < line.length && line.charCodeAt(i) !== 35 /* # */) {
      let tsEnd = i;
      while (tsEnd < line.length && line.charCodeAt(tsEnd) !== 32 && line.charCodeAt(tsEnd) !== 9) tsEnd++;
      const tsText = line.slice(i, tsEnd);
      // The text format's timestamps are whole milliseconds (Prometheus reads `1.5` or `1e3` as
      // an error); OpenMetrics' are seconds, fractions allowed.
      if (this.options.format !== 'openmetrics' && !/^-?\d+$/.test(tsText))
        return `timestamp ${JSON.stringify(tsText.slice(0, 40))} is not an integer of milliseconds`;
      const ts = readSampleValue(tsText);
      if (typeof ts !== 'number' || !Number.isFinite(ts))
        return `timestamp ${JSON.stringify(tsText.slice(0, 40))} ${typeof ts === 'number' ? 'is not a number' : ts}`;
      const rest = skipSpaces(line, tsEnd);
      if (rest < line.length && line.charCodeAt(rest) !== 35) return 'unexpected text after the timestamp';
      timestampMs = this.options.format === 'openmetrics' ? Math.round(ts * 1000) : ts;
      // Nanoseconds or microseconds sent as milliseconds land past the year 9999.
      if (timestampMs < 0 || timestampMs > MAX_TIMESTAMP_MS)
        return `timestamp ${JSON.stringify(tsText.slice(0, 40))} is outside 1970 to 9999`;
    }
    this.options.onSample({ name, labels, value, timestampMs });
    return undefined;
  }

  private error(text: string, message: string, limit?: ParseLimit): void {
    this.errors++;
    const error: ParseError = {
      line: this.lineNumber,
      message: message.length > 2 * MAX_ERROR_TEXT ? `${message.slice(0, 2 * MAX_ERROR_TEXT)}…` : message,
      text: text.slice(0, MAX_ERROR_TEXT),
    };
    if (limit) error.limit = limit;
    this.options.onError?.(error);
  }
}

/** Parses a whole body at once. */
export function parseExposition(
  text: string,
  format: ExpositionFormat = 'prometheus',
): { samples: ExpositionSample[]; errors: ParseError[]; metadata: ExpositionMetadata[] } {
  const samples: ExpositionSample[] = [];
  const errors: ParseError[] = [];
  const metadata: ExpositionMetadata[] = [];
  const parser = new ExpositionParser({
    format,
    onSample: (s) => samples.push(s),
    onMetadata: (m) => metadata.push(m),
    onError: (e) => errors.push(e),
  });
  parser.push(text);
  parser.end();
  return { samples, errors, metadata };
}

function skipSpaces(line: string, i: number): number {
  while (i < line.length) {
    const c = line.charCodeAt(i);
    if (c !== 32 && c !== 9) break;
    i++;
  }
  return i;
}

/** [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; no ':' in label names. */
function scanName(line: string, i: number, colon: boolean): number {
  const start = i;
  while (i < line.length) {
    const c = line.charCodeAt(i);
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || (colon && c === 58);
    const digit = c >= 48 && c <= 57;
    if (!letter && !(digit && i > start)) break;
    i++;
  }
  return i;
}

/** A help text's escapes undone: `\\\\` and `\\n`, and `\\"` in OpenMetrics (others are kept as written). */
function unescapeHelp(text: string, openMetrics: boolean): string {
  if (!text.includes('\\')) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c !== '\\' || i + 1 === text.length) out += c;
    else {
      const next = text.charAt(++i);
      out += next === 'n' ? '\n' : next === '\\' ? '\\' : next === '"' && openMetrics ? '"' : `\\${next}`;
    }
  }
  return out;
}

/** Reads "..." starting at the quote; unescapes \\, \" and \n. */
function readQuoted(line: string, quote: number): { value: string; end: number } | undefined {
  let i = quote + 1;
  let chunkStart = i;
  let value = '';
  while (i < line.length) {
    const c = line.charCodeAt(i);
    if (c === 34) return { value: value + line.slice(chunkStart, i), end: i + 1 };
    if (c === 92 /* \ */) {
      const next = line.charCodeAt(i + 1);
      value += line.slice(chunkStart, i);
      if (next === 110) value += '\n';
      else if (next === 92) value += '\\';
      else if (next === 34) value += '"';
      else value += '\\' + line.charAt(i + 1); // unknown escapes are kept as written
      i += 2;
      chunkStart = i;
      continue;
    }
    i++;
  }
  return undefined;
}

/**
 * Parses a label set written the exposition way, `k="v",k2="v2"` (as in the `labels_raw` column
 * of dcgm CSV exports): the label syntax is the same, so it is parsed as one sample line.
 */
export function parseLabelSet(text: string): Record<string, string> | undefined {
  let labels: Record<string, string> | undefined;
  const parser = new ExpositionParser({ nameLabel: true, onSample: (s) => (labels = s.labels) });
  parser.push(`_{${text}} 0`);
  parser.end();
  return labels;
}
