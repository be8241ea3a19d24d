const SPECIAL = /[\\\t\n\r\0]/;
const SPECIALS = /[\\\t\n\r\0]/g;
const ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\uFFFD',
};

/**
 * A value as a field of `COPY ... FROM STDIN` text format: backslash, tab, newline and carriage
 * return escaped, null as `\N`. NUL, which no Postgres text value can hold, becomes U+FFFD rather
 * than failing the whole COPY.
 */
export function copyText(value: string | null): string {
  if (value === null) return '\\N';
  return SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c] as string) : value;
}
