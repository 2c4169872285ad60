/**
 * JSON Lines text datasets: one object `{"text": "…", "label": "…"}` per line (other keys ignored,
 * a numeric label taken as its decimal text), LF or CRLF, blank lines skipped. Lines are split on
 * bytes, each decoded as strict UTF-8, and a line longer than the record limit is reported and
 * skipped without being held in memory.
 */
import { checkRow, decodeUtf8, invalidRow, type RawRow, type TextLimits } from './row.ts';

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`);

function lineToRow(line: number, bytes: Uint8Array, limits: TextLimits): RawRow | null {
  const s = decodeUtf8(bytes);
  if (s === undefined) return invalidRow(line, 'invalid_utf8', 'the line is not valid UTF-8');
  if (s.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(s);
  } catch (err) {
    return invalidRow(line, 'malformed_json', `not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return invalidRow(line, 'malformed_json', `the line is ${describe(value)}, not a JSON object`);
  }
  const o = value as Record<string, unknown>;
  const text = o.text;
  const label = o.label;
  if (text !== undefined && typeof text !== 'string') return invalidRow(line, 'missing_text', `"text" is ${describe(text)}; it must be a string`);
  let labelText: string | undefined;
  if (typeof label === 'string') labelText = label;
  else if (typeof label === 'number' && Number.isFinite(label)) labelText = String(label);
  else if (label !== undefined) return invalidRow(line, 'missing_label', `"label" is ${describe(label)}; it must be a string or a number`);
  return checkRow(line, text, labelText, limits);
}

/** Reads JSONL rows from `chunks` (BOM already removed) and yields the rows of each chunk. */
export async function* readJsonlRows(chunks: AsyncIterable<Buffer>, opts: { limits: TextLimits }): AsyncGenerator<RawRow[]> {
  const { limits } = opts;
  let line = 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let oversized = false;

  const finish = (last: Uint8Array, out: RawRow[]) => {
    if (oversized) {
      out.push(invalidRow(line, 'malformed_json', `the line is longer than ${limits.maxRecordBytes} bytes (the limit)`));
    } else {
      let bytes = pending.length ? Buffer.concat([...pending, last]) : last;
      if (bytes.length && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
      const row = lineToRow(line, bytes, limits);
      if (row) out.push(row);
    }
    pending = [];
    pendingBytes = 0;
    oversized = false;
    line++;
  };

  for await (const chunk of chunks) {
    const out: RawRow[] = [];
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl < 0) break;
      const piece = chunk.subarray(from, nl);
      if (!oversized && pendingBytes + piece.length > limits.maxRecordBytes) oversized = true;
      finish(piece, out);
      from = nl + 1;
    }
    const rest = chunk.subarray(from);
    if (rest.length && !oversized) {
      if (pendingBytes + rest.length > limits.maxRecordBytes) {
        oversized = true;
        pending = [];
        pendingBytes = 0;
      } else {
        pending.push(Buffer.from(rest)); // a copy: the chunk may be reused by its producer
        pendingBytes += rest.length;
      }
    }
    if (out.length) yield out;
  }
  if (pendingBytes > 0 || oversized) {
    const out: RawRow[] = [];
    finish(new Uint8Array(0), out);
    if (out.length) yield out;
  }
}
