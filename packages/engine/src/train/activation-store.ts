/**
 * Phase 2's frozen activations, kept for the epochs: the values at the boundary between the frozen
 * lower layers and the unfrozen top (one or more tensors per example), written once row by row and
 * read a batch at a time. Held in memory up to a budget, else in one file in the job's work
 * directory (positioned reads; the OS page cache keeps what fits), else not kept at all — the caller
 * then recomputes the frozen part every batch, as without a store. Values keep their dtype
 * (float32 activations, int32 token ids or masks when a model input feeds the top directly).
 *
 *   GRAFT_PHASE2_CACHE              on (default) | off (recompute the frozen part every batch)
 *   GRAFT_PHASE2_CACHE_MEMORY_MB    in memory up to this size (default 256)
 *   GRAFT_PHASE2_CACHE_DISK_MB      on disk up to this size (default 8192); larger: recompute
 */
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export interface ActivationCacheSetting {
  enabled: boolean;
  memoryBytes: number;
  diskBytes: number;
}

const MB = 1024 * 1024;

export function activationCacheSetting(env: NodeJS.ProcessEnv = process.env): ActivationCacheSetting {
  const mode = env.GRAFT_PHASE2_CACHE?.trim() || 'on';
  if (mode !== 'on' && mode !== 'off') throw new Error(`GRAFT_PHASE2_CACHE="${mode}" is not one of on, off`);
  const mb = (name: string, fallback: number) => {
    const raw = env[name]?.trim();
    const v = raw ? Number(raw) : fallback;
    if (!Number.isFinite(v) || v < 0) throw new Error(`${name}="${raw}" is not a size in MB`);
    return Math.floor(v * MB);
  };
  return { enabled: mode === 'on', memoryBytes: mb('GRAFT_PHASE2_CACHE_MEMORY_MB', 256), diskBytes: mb('GRAFT_PHASE2_CACHE_DISK_MB', 8192) };
}

/** One boundary tensor's per-example layout. */
export interface ActivationSlot {
  shape: number[];
  dtype: 'float32' | 'int32';
}

export type ActivationLocation = 'memory' | 'disk';

/** Rows read from a store, as bytes. */
export interface StoredRows {
  n: number;
  records: Uint8Array;
}

/** Where a store of `rows` examples of these slots would live under the setting, or null (too large: recompute). */
export function placeActivations(slots: readonly ActivationSlot[], rows: number, setting: ActivationCacheSetting): { location: ActivationLocation; bytes: number } | null {
  const bytes = recordBytes(slots) * rows;
  if (bytes <= setting.memoryBytes) return { location: 'memory', bytes };
  if (bytes <= setting.diskBytes) return { location: 'disk', bytes };
  return null;
}

const sizeOf = (s: ActivationSlot) => s.shape.reduce((a, b) => a * b, 1) * 4;
const recordBytes = (slots: readonly ActivationSlot[]) => slots.reduce((a, s) => a + sizeOf(s), 0);

export class ActivationStore {
  private readonly record: number;
  private readonly offsets: number[];
  private written = 0;

  private constructor(
    readonly slots: readonly ActivationSlot[],
    readonly rows: number,
    readonly location: ActivationLocation,
    private readonly memory: Uint8Array | null,
    private readonly file: { path: string; handle: FileHandle } | null,
  ) {
    this.record = recordBytes(slots);
    let at = 0;
    this.offsets = slots.map((s) => {
      const o = at;
      at += sizeOf(s);
      return o;
    });
  }

  /** `path`: the file used when `location` is disk. */
  static async create(slots: readonly ActivationSlot[], rows: number, location: ActivationLocation, path: string): Promise<ActivationStore> {
    const bytes = recordBytes(slots) * rows;
    if (location === 'memory') return new ActivationStore(slots, rows, location, new Uint8Array(bytes), null);
    await mkdir(dirname(path), { recursive: true });
    return new ActivationStore(slots, rows, location, null, { path, handle: await open(path, 'w+') });
  }

  get bytes(): number {
    return this.record * this.rows;
  }

  /** Appends the next `values[0].shape[0]` rows (one tensor per slot; the caller keeps ownership). */
  async append(values: readonly tf.Tensor[]): Promise<void> {
    const n = values[0]!.shape[0]!;
    const chunk = new Uint8Array(n * this.record);
    for (const [i, v] of values.entries()) {
      const data = await v.data();
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const size = sizeOf(this.slots[i]!);
      if (bytes.byteLength !== n * size) throw new Error(`activation store: slot ${i} got ${bytes.byteLength} bytes for ${n} rows of ${size}`);
      for (let r = 0; r < n; r++) chunk.set(bytes.subarray(r * size, (r + 1) * size), r * this.record + this.offsets[i]!);
    }
    if (this.written + n > this.rows) throw new Error(`activation store: ${this.written + n} rows written into ${this.rows}`);
    if (this.memory) this.memory.set(chunk, this.written * this.record);
    else await this.file!.handle.write(chunk, 0, chunk.byteLength, this.written * this.record);
    this.written += n;
  }

  /** The stored values of these rows, one tensor [rows.length, ...shape] per slot (the caller disposes them). */
  async read(rows: readonly number[]): Promise<tf.Tensor[]> {
    return this.tensors(await this.records(rows));
  }

  /** The stored bytes of these rows (no tensors yet: a batch read ahead and never used leaks nothing). */
  async records(rows: readonly number[]): Promise<StoredRows> {
    const n = rows.length;
    const records = new Uint8Array(n * this.record);
    if (this.memory) {
      rows.forEach((r, k) => records.set(this.memory!.subarray(r * this.record, (r + 1) * this.record), k * this.record));
    } else {
      // Runs of consecutive rows in one read each.
      for (let k = 0; k < n; ) {
        let end = k + 1;
        while (end < n && rows[end] === rows[end - 1]! + 1) end++;
        await this.file!.handle.read(records, k * this.record, (end - k) * this.record, rows[k]! * this.record);
        k = end;
      }
    }
    return { n, records };
  }

  /** Stored rows as one tensor [n, ...shape] per slot (the caller disposes them). */
  tensors({ n, records }: StoredRows): tf.Tensor[] {
    return this.slots.map((s, i) => {
      const size = sizeOf(s);
      const out = new Uint8Array(n * size);
      for (let k = 0; k < n; k++) out.set(records.subarray(k * this.record + this.offsets[i]!, k * this.record + this.offsets[i]! + size), k * size);
      const values = s.dtype === 'int32' ? new Int32Array(out.buffer) : new Float32Array(out.buffer);
      return tf.tensor(values, [n, ...s.shape], s.dtype);
    });
  }

  get complete(): boolean {
    return this.written === this.rows;
  }

  async close(): Promise<void> {
    if (!this.file) return;
    await this.file.handle.close().catch(() => {});
    await rm(this.file.path, { force: true });
  }
}
