/**
 * CSV text datasets, parsed by `csv-parse` on bytes (so that each field's UTF-8 is checked strictly,
 * row by row) with RFC 4180 quoting: quoted fields may hold delimiters, doubled quotes and line
 * breaks; LF or CRLF. Lenient where common writers are (a quote inside an unquoted field, or text
 * after a closing quote, is kept literally, as Python's csv and spreadsheets read it). A record's
 * line is the physical line it starts on, from our own index of newlines (csv-parse's own count
 * drifts on CRLF inside quotes).
 */
import { GraftError } from '@graft/contracts';
import { parse, type CsvError, type InfoRecord } from 'csv-parse';
import { LineIndex } from './line-index.ts';
import { checkRow, decodeUtf8, invalidRow, type RawRow, type TextLimits } from './row.ts';

const CANDIDATES = [',', '\t', ';', '|'] as const;

const clean = (name: string) => name.trim().replace(/^"(.*)"$/s, '$1').trim().toLowerCase();

/**
 * The delimiter whose split of the header line yields both a `text` and a `label` column (a `.tsv`
 * name tries tab first); null when none does.
 */
export function detectDelimiter(headerLine: string, name: string): string | null {
  const order = /\.tsv$/i.test(name) ? ['\t', ...CANDIDATES.filter((c) => c !== '\t')] : [...CANDIDATES];
  for (const d of order) {
    const cols = headerLine.split(d).map(clean);
    if (cols.includes('text') && cols.includes('label')) return d;
  }
  return null;
}

function headerColumns(fields: Uint8Array[]): { text: number; label: number; width: number } {
  const names = fields.map((f) => clean(decodeUtf8(f) ?? ''));
  for (const want of ['text', 'label']) {
    const n = names.filter((x) => x === want).length;
    if (n > 1) throw new GraftError('invalid_text_dataset', `The CSV header has ${n} columns named "${want}"; keep one.`, 'file');
  }
  const text = names.indexOf('text');
  const label = names.indexOf('label');
  if (text < 0 || label < 0) {
    throw new GraftError('invalid_text_dataset', `The CSV header must name a "text" and a "label" column; it has: ${names.slice(0, 20).join(', ')}.`, 'file');
  }
  return { text, label, width: names.length };
}

function countNewlines(fields: Uint8Array[]): number {
  let n = 0;
  for (const f of fields) {
    let i = f.indexOf(0x0a);
    while (i >= 0) {
      n++;
      i = f.indexOf(0x0a, i + 1);
    }
  }
  return n;
}

/**
 * Reads CSV records from `chunks` (BOM already removed) and yields the rows of each chunk. The
 * first record is the header. Throws `invalid_text_dataset` for a header without `text`/`label`
 * and for a record longer than `maxRecordBytes` (a quote opened and never closed).
 */
export async function* readCsvRows(chunks: AsyncIterable<Buffer>, opts: { delimiter: string; limits: TextLimits }): AsyncGenerator<RawRow[]> {
  const { limits } = opts;
  const index = new LineIndex();
  let header: { text: number; label: number; width: number } | null = null;
  let lastEnd = 0;
  let batch: RawRow[] = [];
  let failure: Error | null = null;

  const onRecord = (fields: Uint8Array[], info: InfoRecord) => {
    if (failure) return null;
    const end = info.bytes;
    // `end` is past the record's delimiter, so its last byte (the newline, or the file's last byte) is on its last line.
    const line = index.lineAt(end - 1) - countNewlines(fields);
    lastEnd = end;
    try {
      if (!header) header = headerColumns(fields);
      else batch.push(toRow(line, fields, header));
    } catch (err) {
      failure = err as Error;
    }
    return null;
  };
  const onSkip = (err: CsvError | undefined) => {
    if (failure) return undefined;
    const line = index.firstContentLineFrom(lastEnd);
    if (err?.code === 'CSV_QUOTE_NOT_CLOSED') {
      const last = index.lineAt(index.bytes - 1);
      batch.push(invalidRow(line, 'malformed_record', `a quote opened in this record is never closed (lines ${line}–${last}, the end of the file, read as one record)`));
    } else {
      batch.push(invalidRow(line, 'malformed_record', err?.message ?? 'malformed CSV record'));
    }
    return undefined;
  };
  const toRow = (line: number, fields: Uint8Array[], h: { text: number; label: number; width: number }): RawRow => {
    if (fields.length > h.width) {
      return invalidRow(line, 'malformed_record', `the record has ${fields.length} fields; the header has ${h.width} (a delimiter inside an unquoted field?)`);
    }
    const textBytes = fields[h.text];
    const labelBytes = fields[h.label];
    const text = textBytes === undefined ? undefined : decodeUtf8(textBytes);
    const label = labelBytes === undefined ? undefined : decodeUtf8(labelBytes);
    if (textBytes !== undefined && text === undefined) return invalidRow(line, 'invalid_utf8', 'the text is not valid UTF-8');
    if (labelBytes !== undefined && label === undefined) return invalidRow(line, 'invalid_utf8', 'the label is not valid UTF-8');
    if (text === undefined) return invalidRow(line, 'missing_text', `no text: the record has ${fields.length} field(s); the header has ${h.width}`);
    if (label === undefined) return invalidRow(line, 'missing_label', `no label: the record has ${fields.length} field(s); the header has ${h.width}`);
    return checkRow(line, text, label, limits);
  };

  const parser = parse({
    encoding: null,
    bom: false,
    delimiter: opts.delimiter,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_record: onRecord as never,
    on_skip: onSkip,
  });
  let parserError: Error | null = null;
  parser.on('error', (e) => (parserError = e));
  parser.resume(); // nothing is pushed (on_record keeps every record); let 'end' come
  const finished = new Promise<void>((resolve) => {
    parser.once('finish', resolve);
    parser.once('error', () => resolve());
  });
  const write = (chunk: Buffer) => new Promise<void>((resolve) => parser.write(chunk, () => resolve()));

  for await (const chunk of chunks) {
    index.feed(chunk);
    await write(chunk);
    if (failure) throw failure;
    if (parserError) throw new GraftError('invalid_text_dataset', `The CSV cannot be parsed: ${(parserError as Error).message}.`, 'file');
    if (index.bytes - lastEnd > limits.maxRecordBytes) {
      const line = index.firstContentLineFrom(lastEnd);
      throw new GraftError(
        'invalid_text_dataset',
        `The CSV record starting on line ${line} is longer than ${limits.maxRecordBytes} bytes (the limit): a quote opened there is probably never closed.`,
        'file',
      );
    }
    if (batch.length) {
      yield batch;
      batch = [];
    }
  }
  parser.end();
  await finished;
  if (failure) throw failure;
  if (parserError) throw new GraftError('invalid_text_dataset', `The CSV cannot be parsed: ${(parserError as Error).message}.`, 'file');
  if (!header) throw new GraftError('invalid_text_dataset', 'The CSV file has no header line.', 'file');
  if (batch.length) yield batch;
}
