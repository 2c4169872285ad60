/**
 * Cancellation between batches, as the common text-encoder contract has it: an aborted signal
 * rejects with its reason, or an AbortError when it has none.
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

export interface EmbedOptions {
  /** Texts per forward pass (default 32). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called after every batch with the texts done so far. */
  onProgress?: (done: number, total: number) => void;
}
