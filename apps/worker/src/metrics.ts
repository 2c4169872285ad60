/**
 * The worker's Prometheus metrics (served on WORKER_METRICS_PORT): jobs by outcome and their
 * duration, epochs and training examples (images or texts) per second by backend, and the resident
 * memory of each training process, read from /proc (Linux) at scrape time and sampled while jobs
 * run for the peak. Counters allow rate() in Prometheus; the *_per_second gauges hold the latest
 * epoch's figure for a glance.
 */
import { readFileSync } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ChildMessage } from './trainer/messages.ts';
import type { TrainingRun } from './trainer/run-training.ts';

/** VmRSS and VmHWM (peak) of a process, in bytes; null off Linux or once it is gone. */
export function processMemory(pid: number | undefined): { rss: number; peak: number } | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    const rss = kb('VmRSS');
    return Number.isFinite(rss) ? { rss, peak: kb('VmHWM') || rss } : null;
  } catch {
    return null;
  }
}

export interface WorkerMetrics {
  registry: Registry;
  jobStarted(id: string): void;
  jobEnded(id: string, status: string, seconds: number): void;
  trainingMessage(id: string, m: ChildMessage): void;
  close(): void;
}

export function createWorkerMetrics(opts: { backend: string; running: Map<string, TrainingRun> }): WorkerMetrics {
  const { backend, running } = opts;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const jobs = new Counter({ name: 'graft_worker_jobs_total', help: 'Jobs this worker ran, by outcome and backend.', labelNames: ['status', 'backend'] as const, registers: [registry] });
  const duration = new Histogram({
    name: 'graft_job_duration_seconds',
    help: 'Wall time of a job on this worker (pulling inputs, training, storing the model), by outcome and backend.',
    labelNames: ['status', 'backend'] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
    registers: [registry],
  });
  const epochs = new Counter({ name: 'graft_training_epochs_total', help: 'Epochs trained, by backend and phase.', labelNames: ['backend', 'phase'] as const, registers: [registry] });
  const examples = new Counter({ name: 'graft_training_examples_total', help: 'Training examples passed through in epochs, by backend and unit (images or texts).', labelNames: ['backend', 'unit'] as const, registers: [registry] });
  const epochsPerSecond = new Gauge({ name: 'graft_training_epochs_per_second', help: 'Epochs per second of the latest epoch, by backend.', labelNames: ['backend'] as const, registers: [registry] });
  const examplesPerSecond = new Gauge({ name: 'graft_training_examples_per_second', help: 'Training examples per second of the latest epoch, by backend and unit (images or texts).', labelNames: ['backend', 'unit'] as const, registers: [registry] });
  new Gauge({
    name: 'graft_trainer_resident_memory_bytes',
    help: 'Resident memory of each running training process, by fine-tune.',
    labelNames: ['fine_tune'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [id, run] of running) {
        const m = processMemory(run.pid);
        if (m) this.set({ fine_tune: id }, m.rss);
      }
    },
  });
  const peakGauge = new Gauge({ name: 'graft_trainer_peak_resident_memory_bytes', help: 'Peak resident memory of the latest finished training process, by backend and unit of its data (images or texts).', labelNames: ['backend', 'unit'] as const, registers: [registry] });
  new Gauge({ name: 'graft_worker_running_jobs', help: 'Jobs training now on this worker.', registers: [registry], collect() { this.set(running.size); } });

  // Per job: the unit of its data, training examples (from the `dataset` event) and the peak memory sampled so far.
  const perJob = new Map<string, { unit: string; train: number; peak: number }>();
  const sampler = setInterval(() => {
    for (const [id, run] of running) {
      const j = perJob.get(id);
      const m = processMemory(run.pid);
      if (j && m) j.peak = Math.max(j.peak, m.peak);
    }
  }, 1_000);
  sampler.unref();

  return {
    registry,
    jobStarted(id) {
      perJob.set(id, { unit: 'examples', train: 0, peak: 0 });
    },
    jobEnded(id, status, seconds) {
      jobs.inc({ status, backend });
      duration.observe({ status, backend }, seconds);
      const j = perJob.get(id);
      if (j?.peak) peakGauge.set({ backend, unit: j.unit }, j.peak);
      perJob.delete(id);
    },
    trainingMessage(id, m) {
      const j = perJob.get(id);
      if (!j) return;
      if (m.kind === 'event' && m.type === 'dataset') {
        const classes = (m.data?.classes ?? []) as { train?: number }[];
        j.train = classes.reduce((n, c) => n + (c.train ?? 0), 0);
        // "N training and M validation images in K classes": the task's unit (images, texts).
        j.unit = /validation (\w+) in/.exec(m.message)?.[1] ?? 'examples';
      } else if (m.kind === 'epoch' && m.durationMs > 0) {
        epochs.inc({ backend, phase: m.phase });
        epochsPerSecond.set({ backend }, 1000 / m.durationMs);
        if (j.train > 0 && m.phase !== 'baseline') {
          examples.inc({ backend, unit: j.unit }, j.train);
          examplesPerSecond.set({ backend, unit: j.unit }, (j.train * 1000) / m.durationMs);
        }
      }
    },
    close() {
      clearInterval(sampler);
    },
  };
}
