/** Growable typed arrays: a few bytes per row instead of an object per row. */
export class U32Column {
  private data = new Uint32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('graft needs a little-endian machine');

/**
 * 64-bit values written as two 32-bit halves (no BigInt per row): value i is words[2i+1]·2³² +
 * words[2i] (the layout of a little-endian BigUint64Array over the same memory).
 */
export class U64Column {
  private words = new Uint32Array(2048);
  length = 0;
  /** Appends the value of 16 hex digits. */
  pushHex(hex: string): void {
    if (this.length * 2 === this.words.length) {
      const next = new Uint32Array(this.words.length * 2);
      next.set(this.words);
      this.words = next;
    }
    this.words[this.length * 2] = parseInt(hex.slice(8, 16), 16);
    this.words[this.length * 2 + 1] = parseInt(hex.slice(0, 8), 16);
    this.length++;
  }
  /** [lo, hi] pairs per value. */
  wordView(): Uint32Array {
    return this.words.subarray(0, this.length * 2);
  }
  view(): BigUint64Array {
    return new BigUint64Array(this.words.buffer, 0, this.length);
  }
}
