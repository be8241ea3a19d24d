/** One label of a series. A label with an empty value does not exist (Prometheus's rule). */
export interface Label {
  readonly name: string;
  readonly value: string;
}

/** A label set, sorted by name, names unique, no empty values. */
export type Labels = readonly Label[];

export const METRIC_NAME = '__name__';
export const BUCKET_LABEL = 'le';

const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function isValidLabelName(name: string): boolean {
  return LABEL_NAME_RE.test(name);
}

export function labelsFromRecord(record: Readonly<Record<string, string>>): Labels {
  return Object.entries(record)
    .filter(([, value]) => value !== '')
    .map(([name, value]) => ({ name, value }))
    .sort((a, b) => compareStrings(a.name, b.name));
}

export function labelsToRecord(labels: Labels): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of labels) out[l.name] = l.value;
  return out;
}

export function getLabel(labels: Labels, name: string): string {
  for (const l of labels) if (l.name === name) return l.value;
  return '';
}

/** A string that identifies the label set; equal sets give equal keys. */
export function labelsKey(labels: Labels): string {
  let key = '';
  for (const l of labels) key += l.name + '\xff' + l.value + '\xff';
  return key;
}

/**
 * Go's order of strings, which Prometheus sorts by: their UTF-8 bytes, that is their code points.
 * JavaScript's `<` compares UTF-16 units instead, which puts a character past U+FFFF (a surrogate
 * pair, 0xD800-0xDFFF) before one of U+E000-U+FFFF; only where the first difference is between
 * those two kinds does the order need mending.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length < b.length ? -1 : 1;
  const x = a.charCodeAt(i);
  const y = b.charCodeAt(i);
  if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) < codePointRank(y) ? -1 : 1;
  return x < y ? -1 : 1;
}

/** A UTF-16 unit of 0xD800 or more, ranked as the code points it stands for are: surrogates last. */
const codePointRank = (unit: number) => (unit >= 0xe000 ? unit - 0x800 : unit + 0x2000);

/** Prometheus's order of label sets: label by label, name then value, shorter first. */
export function compareLabels(a: Labels, b: Labels): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const byName = compareStrings(a[i].name, b[i].name);
    if (byName !== 0) return byName;
    const byValue = compareStrings(a[i].value, b[i].value);
    if (byValue !== 0) return byValue;
  }
  return a.length - b.length;
}

/**
 * `derive` as a function of a label set alone, worked out once per set: a series' labels are the
 * same array at every step, so its derived set (and that set's key) is made once, not per step.
 */
export function memoizeLabels<T>(derive: (labels: Labels) => T): (labels: Labels) => T {
  const made = new WeakMap<Labels, { value: T }>();
  return (labels) => {
    let found = made.get(labels);
    if (found === undefined) made.set(labels, (found = { value: derive(labels) }));
    return found.value;
  };
}

/** labelsKey, made once per label set: the same sets come back at every step. */
export const labelsKeyOf = memoizeLabels(labelsKey);

/**
 * Label sets without their metric name, by the set they came from. Operators and functions drop
 * the name of the same series at every step: one array per series, not one per step, and the same
 * array each time, so what is keyed by label set is worked out once.
 */
const withoutName = memoizeLabels((labels) => labels.filter((l) => l.name !== METRIC_NAME));

export function dropMetricName(labels: Labels): Labels {
  return labels.some((l) => l.name === METRIC_NAME) ? withoutName(labels) : labels;
}

export function keepLabels(labels: Labels, names: ReadonlySet<string>): Labels {
  return labels.filter((l) => names.has(l.name));
}

export function withoutLabels(labels: Labels, names: ReadonlySet<string>): Labels {
  return labels.filter((l) => !names.has(l.name));
}

/** Sets (or, with an empty value, removes) one label. */
export function setLabel(labels: Labels, name: string, value: string): Labels {
  const out = labels.filter((l) => l.name !== name);
  if (value === '') return out;
  let i = 0;
  while (i < out.length && out[i].name < name) i++;
  out.splice(i, 0, { name, value });
  return out;
}

/** The key of the listed labels only (`on(...)`, `by(...)`), missing labels counted as empty. */
export function keyWithLabels(labels: Labels, names: ReadonlySet<string>): string {
  let key = '';
  for (const l of labels) if (names.has(l.name)) key += l.name + '\xff' + l.value + '\xff';
  return key;
}

/** The key of all labels but the listed ones (`ignoring(...)`, `without(...)`). */
export function keyWithoutLabels(labels: Labels, names: ReadonlySet<string>): string {
  let key = '';
  for (const l of labels) if (!names.has(l.name)) key += l.name + '\xff' + l.value + '\xff';
  return key;
}

/** `{a="1", b="2"}`, the way Prometheus prints a label set in its error messages. */
export function formatLabels(labels: Labels): string {
  return '{' + labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(', ') + '}';
}
