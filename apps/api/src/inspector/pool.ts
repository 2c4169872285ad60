/**
 * A bounded pool: at most `size` tasks run at once, at most `queue` more wait their turn (in
 * arrival order); beyond that `run` refuses at once with PoolFullError, so a burst of requests
 * cannot start an unbounded number of heavy child processes nor pile up unbounded waiters.
 */
export class PoolFullError extends Error {
  constructor(readonly size: number, readonly queue: number) {
    super(`all ${size} slots busy and ${queue} requests waiting`);
    this.name = 'PoolFullError';
  }
}

export class Pool {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly size: number, readonly queue: number) {}

  get stats() {
    return { running: this.running, waiting: this.waiting.length };
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) {
      if (this.waiting.length >= this.queue) throw new PoolFullError(this.size, this.queue);
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (running stays the same), else free it.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
