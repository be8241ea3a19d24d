import { copyText } from './copy';

describe('copyText (a COPY text-format field)', () => {
  it('passes plain text through unchanged', () => {
    expect(copyText('GET /api/v1/gpus?limit=5 ünïcødé')).toBe('GET /api/v1/gpus?limit=5 ünïcødé');
  });

  it('escapes backslash, tab, newline and carriage return, each wherever it occurs', () => {
    expect(copyText('a\\b\tc\nd\re\\\\')).toBe('a\\\\b\\tc\\nd\\re\\\\\\\\');
  });

  it('writes null as \\N, and the text "\\N" so that it is not read back as null', () => {
    expect(copyText(null)).toBe('\\N');
    expect(copyText('\\N')).toBe('\\\\N');
  });

  it('replaces NUL, which no Postgres text can hold, with U+FFFD', () => {
    expect(copyText('a\0b\0')).toBe('a\uFFFDb\uFFFD');
  });
});
