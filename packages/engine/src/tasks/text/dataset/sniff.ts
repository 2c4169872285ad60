/**
 * CSV or JSONL? Told by the first character that is not white space (after a UTF-8 BOM): `{` is
 * JSON Lines, anything else is CSV, whose first line must then name the `text` and `label`
 * columns (which also tells its delimiter). The file name only helps: a `.tsv` tries tab first,
 * and a `.jsonl` name on content that is not JSON Lines is mentioned in the error.
 */
import { GraftError } from '@graft/contracts';
import { detectDelimiter } from './csv.ts';
import { decodeUtf8 } from './row.ts';
import { openTextSource, type Chunks, type Compression } from './source.ts';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff]);

const invalid = (message: string) => new GraftError('invalid_text_dataset', message, 'file');

/** `chunks` without their first `n` bytes. */
export async function* skip(chunks: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const c of chunks) {
    if (left > 0) {
      const cut = Math.min(left, c.length);
      left -= cut;
      if (cut === c.length) continue;
      yield c.subarray(cut);
    } else yield c;
  }
}

/** Tells CSV from JSONL by the first character that is not white space; refuses what is neither. */
export async function sniff(chunks: Chunks, name: string): Promise<{ type: 'csv' | 'jsonl'; bom: boolean; delimiter: string | null }> {
  let head = await chunks.peek(64 * 1024, 0x0a);
  const bom = head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  if (bom) head = head.subarray(3);
  if (head.subarray(0, 4).equals(PNG) || head.subarray(0, 3).equals(JPEG)) {
    throw invalid('The file is an image, not a CSV or JSONL file: an image dataset is a zip of class folders uploaded with task=image-classification.');
  }
  if (head.includes(0)) throw invalid('The file is binary (it holds NUL bytes), not a CSV or JSONL text file.');
  const text = head.toString('latin1');
  const first = text.search(/\S/);
  if (first < 0) throw invalid('The file is empty: a text dataset needs a CSV header line and rows, or JSON Lines.');
  const c = text[first];
  if (c === '{') return { type: 'jsonl', bom, delimiter: null };
  if (c === '[') throw invalid('The file is a JSON array; a text dataset is JSON Lines: one {"text": …, "label": …} object per line.');
  const nl = head.indexOf(0x0a);
  const headerLine = decodeUtf8(head.subarray(0, nl < 0 ? head.length : nl));
  if (headerLine === undefined) throw invalid('The CSV header line is not valid UTF-8.');
  const delimiter = detectDelimiter(headerLine.replace(/\r$/, ''), name);
  if (!delimiter) {
    const said = /\.(jsonl|ndjson|json)$/i.test(name) ? ` The file name says JSON Lines, but its first character is "${c}", not "{".` : '';
    const shown = headerLine.slice(0, 120).replace(/\r$/, '');
    throw invalid(
      `The file is read as CSV, whose first line must name a "text" and a "label" column (separated by , or tab or ; or |); it is: "${shown}".${said}`,
    );
  }
  return { type: 'csv', bom, delimiter };
}

/**
 * What a file would be read as, without reading it all: for messages that point a client to the
 * right task. Null when it is not a text dataset at all.
 */
export async function detectTextFormat(path: string, filename: string): Promise<{ type: 'csv' | 'jsonl'; compression: Compression } | null> {
  try {
    const source = await openTextSource(path, filename);
    try {
      const kind = await sniff(source.chunks, source.name);
      return { type: kind.type, compression: source.compression };
    } finally {
      source.close();
    }
  } catch {
    return null;
  }
}
