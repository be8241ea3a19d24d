/**
 * RFC 4180 CSV: fields separated by commas, optionally double-quoted, with "" for a quote inside
 * a quoted field; quoted fields may span lines. Calls `onRow` for every record.
 */
export function readCsv(text: string, onRow: (fields: string[], line: number) => void): void {
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = '';
  };
  const endRecord = () => {
    endField();
    if (!(fields.length === 1 && fields[0] === '')) onRow(fields, recordLine);
    fields = [];
  };
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === 34 /* " */) {
        if (text.charCodeAt(i + 1) === 34) {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      const next = text.indexOf('"', i);
      const end = next === -1 ? text.length : next;
      const chunk = text.slice(i, end);
      for (let k = chunk.indexOf('\n'); k !== -1; k = chunk.indexOf('\n', k + 1)) line++;
      field += chunk;
      i = end;
      if (next === -1)
        throw new CsvError(`unterminated quoted field starting on line ${recordLine}`, recordLine);
      continue;
    }
    if (c === 34 && field === '') {
      quoted = true;
      i++;
    } else if (c === 44 /* , */) {
      endField();
      i++;
    } else if (c === 10 || c === 13) {
      endRecord();
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      i++;
      line++;
      recordLine = line;
    } else {
      field += text[i];
      i++;
    }
  }
  if (field !== '' || fields.length > 0) endRecord();
}

export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
    this.name = 'CsvError';
  }
}
