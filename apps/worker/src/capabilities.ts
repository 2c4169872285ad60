/**
 * What this worker can run, as it advertises it in the registry: its TensorFlow.js backend, the
 * GPUs nvidia-smi lists, and the RAM training may use (the host's, or the container's cgroup limit
 * when lower). WORKER_ACCELERATOR and WORKER_MEMORY_MB override what is detected.
 */
import type { WorkerCapabilities } from '@graft/contracts';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';

/** GPUs as `nvidia-smi` reports them; none when it is absent (no driver, or not exposed to the container). */
export function listGpus(): WorkerCapabilities['gpus'] {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 5_000 });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name = 'GPU', mib] = line.split(',').map((s) => s.trim());
      const n = Number(mib);
      return { name, memoryBytes: Number.isFinite(n) && n > 0 ? n * 2 ** 20 : null };
    });
}

/** The cgroup v2 (or v1) memory limit of this process's container, when there is one. */
function cgroupLimit(): number | null {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = readFileSync(file, 'utf8').trim();
      const n = Number(text);
      // "max" (v2) or a huge number (v1) mean no limit.
      if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
    } catch {
      /* not in a cgroup with a limit */
    }
  }
  return null;
}

export function detectCapabilities(opts: { backend: string; concurrency: number; accelerator: 'auto' | 'gpu' | 'cpu'; memoryMb: number }): WorkerCapabilities {
  const gpus = opts.backend === 'node-gpu' || opts.accelerator === 'gpu' ? listGpus() : [];
  const accelerator = opts.accelerator !== 'auto' ? opts.accelerator : opts.backend === 'node-gpu' && gpus.length > 0 ? 'gpu' : 'cpu';
  const detected = Math.min(totalmem(), cgroupLimit() ?? Infinity);
  const memoryBytes = opts.memoryMb > 0 ? opts.memoryMb * 2 ** 20 : detected;
  return {
    backend: opts.backend,
    accelerator,
    gpus,
    memoryBytes,
    memoryPerJobBytes: Math.floor(memoryBytes / opts.concurrency),
    cpus: availableParallelism(),
    concurrency: opts.concurrency,
  };
}
