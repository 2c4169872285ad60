/**
 * The normalised form of a text dataset, what training reads: JSON Lines of the valid rows,
 * `{"line":<n>,"text":"…","label":"…"}`, in the order of the uploaded file (so by `line`, a stable
 * order: the same upload always gives the same file). Texts are exactly as uploaded, labels
 * trimmed; `line` points back into the original for any message about a row.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface TextRow {
  /** Physical line of the row in the uploaded file (1-based, header counted). */
  line: number;
  text: string;
  label: string;
}

/** Appends rows with few, large writes, waiting when the disk is behind. */
export class RowsWriter {
  private readonly out: WriteStream;
  private buffer = '';
  private failed: Error | null = null;

  constructor(path: string) {
    this.out = createWriteStream(path);
    this.out.on('error', (e) => (this.failed = e));
  }

  async add(row: TextRow): Promise<void> {
    // The same JSON as stringifying the object, without building the object.
    this.buffer += `{"line":${row.line},"text":${JSON.stringify(row.text)},"label":${JSON.stringify(row.label)}}\n`;
    if (this.buffer.length >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.failed) throw this.failed;
    const data = this.buffer;
    this.buffer = '';
    if (!this.out.write(data)) await new Promise<void>((resolve) => this.out.once('drain', resolve));
  }

  async close(): Promise<void> {
    if (this.buffer) await this.flush();
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (this.failed) throw this.failed;
  }

  /**
   * Stops writing and resolves once the file is closed. The stream opens its file asynchronously: a
   * check refused within its first chunk must wait for that, or the file would appear again after
   * the caller removed it.
   */
  destroy(): Promise<void> {
    if (this.out.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.out.once('close', () => resolve());
      this.out.destroy();
    });
  }
}

/** The rows of a normalised file, in order, one at a time. */
export async function* readTextRows(path: string): AsyncGenerator<TextRow> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const l of lines) if (l) yield JSON.parse(l) as TextRow;
}

export interface LoadedTextDataset {
  rows: TextRow[];
  /** Labels sorted by name: the index of a label here is its output index (as image classes). */
  classes: string[];
  /** Per row, the index of its label in `classes`. */
  labels: Int32Array;
}

/** The whole normalised dataset in memory, as training needs it. */
export async function loadTextDataset(path: string): Promise<LoadedTextDataset> {
  const rows: TextRow[] = [];
  for await (const r of readTextRows(path)) rows.push(r);
  const classes = [...new Set(rows.map((r) => r.label))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const index = new Map(classes.map((c, i) => [c, i]));
  const labels = Int32Array.from(rows, (r) => index.get(r.label)!);
  return { rows, classes, labels };
}
