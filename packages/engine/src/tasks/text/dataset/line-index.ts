/**
 * Byte offsets → physical line numbers over a stream read once. The index sees every chunk before
 * the parser does, keeps the offsets of the newlines it has not yet been asked past, and answers
 * queries that only move forward (records come in order), so its memory stays small.
 */
export class LineIndex {
  /** Absolute offsets of '\n' bytes not yet passed by a query. */
  private offsets: number[] = [];
  /** For each offset above: the line it ends is blank ('' or '\r'). */
  private blank: boolean[] = [];
  private head = 0;
  private passed = 0;
  private seen = 0;
  private lineStart = 0;
  private lastByte = -1;

  feed(chunk: Uint8Array): void {
    let from = 0;
    for (;;) {
      const i = chunk.indexOf(0x0a, from);
      if (i < 0) break;
      const at = this.seen + i;
      const before = i > 0 ? chunk[i - 1] : this.lastByte;
      this.offsets.push(at);
      this.blank.push(at === this.lineStart || (at === this.lineStart + 1 && before === 0x0d));
      this.lineStart = at + 1;
      from = i + 1;
    }
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1]!;
    this.seen += chunk.length;
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.seen;
  }

  /** Newlines strictly before `offset` (offsets asked for never decrease). */
  newlinesBefore(offset: number): number {
    while (this.head < this.offsets.length && this.offsets[this.head]! < offset) this.head++;
    if (this.head > 4096 && this.head * 2 > this.offsets.length) {
      this.offsets = this.offsets.slice(this.head);
      this.blank = this.blank.slice(this.head);
      this.passed += this.head;
      this.head = 0;
    }
    return this.passed + this.head;
  }

  /** The 1-based line holding the byte at `offset`. */
  lineAt(offset: number): number {
    return 1 + this.newlinesBefore(offset);
  }

  /** The first line at or after the one holding `offset` that is not blank (a record starts there). */
  firstContentLineFrom(offset: number): number {
    let line = this.lineAt(offset);
    let k = this.head;
    while (k < this.offsets.length && this.blank[k]) {
      line++;
      k++;
    }
    return line;
  }
}
