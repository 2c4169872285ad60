/**
 * docker-compose.yml, checked with `docker-compose config` (Debian's docker-compose 1.29 validates
 * a file without a Docker engine; the test command installs it when missing, so this check can
 * fail, never skip), then what the file promises, read from the resolved configuration.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));

function compose(args: string[], cwd = root) {
  const r = spawnSync('docker-compose', args, { cwd, encoding: 'utf8', env: { ...process.env, COMPOSE_INTERACTIVE_NO_CLI: '1' } });
  if (r.error) throw new Error(`docker-compose is not installed (the test command installs Debian's package; by hand: apt-get install docker-compose): ${r.error.message}`);
  return r;
}

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  restart?: string;
  stop_grace_period?: string;
  ports?: unknown[];
  container_name?: string;
  volumes?: (string | { type: string; source?: string; target: string })[];
  depends_on?: Record<string, { condition: string }>;
  deploy?: { resources?: { reservations?: { devices?: { driver: string; count: number | string; capabilities: string[] }[] } } };
  profiles?: string[];
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

/** Volumes in either syntax (docker-compose 1.29 prints `name:/target:rw`). */
function mounts(s: Service): { source?: string; target: string }[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source, target: v.target };
    const parts = v.split(':');
    return parts.length === 1 ? { target: parts[0]! } : { source: parts[0], target: parts[1]! };
  });
}

/** Durations as compose writes them: `45s`, `1m30s`. */
function ms(d: string): number {
  let total = 0;
  for (const [, n, unit] of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms'];
  return total;
}

describe('docker-compose.yml', () => {
  let config: ComposeFile;

  test('`docker-compose config` validates it', () => {
    const r = compose(['-f', 'docker-compose.yml', 'config']);
    assert.equal(r.status, 0, r.stderr);
    config = parse(r.stdout) as ComposeFile;
  });

  test('the check can fail: a broken file is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-compose-'));
    try {
      writeFileSync(join(dir, 'docker-compose.yml'), 'services:\n  api:\n    image: x\n    restart_policy: always\n');
      const r = compose(['-f', 'docker-compose.yml', 'config', '-q'], dir);
      assert.notEqual(r.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('postgres and redis have health checks and named volumes; redis keeps an AOF on its volume', () => {
    for (const name of ['postgres', 'redis', 'minio']) {
      const s = config.services[name]!;
      assert.ok(s.healthcheck?.test?.length, `${name} has no healthcheck`);
      assert.ok(mounts(s).some((v) => v.source && config.volumes[v.source] !== undefined), `${name} has no named volume`);
    }
    const redis = config.services.redis!;
    assert.ok(redis.command?.join(' ').includes('--appendonly yes'));
    assert.ok(mounts(redis).some((v) => v.target === '/data' && config.volumes[v.source ?? ''] !== undefined), 'the AOF directory /data is on a named volume');
  });

  test('migrations run only in the one-shot migrate service; the API and workers wait for it and do not migrate', () => {
    const migrate = config.services.migrate!;
    assert.deepEqual(migrate.command, ['node', '--import', 'tsx', 'scripts/migrate.ts']);
    assert.ok(!migrate.restart || migrate.restart === 'no');
    for (const name of ['api', 'worker', 'worker-cpu']) {
      const s = config.services[name]!;
      assert.equal(s.environment?.MIGRATE_ON_START, 'false', `${name} would migrate on start`);
      assert.equal(s.depends_on?.migrate?.condition, 'service_completed_successfully', `${name} does not wait for migrate`);
    }
  });

  test('the API has a health check and a restart policy', () => {
    const api = config.services.api!;
    assert.ok(api.healthcheck?.test?.join(' ').includes('/healthz'));
    assert.ok(['always', 'unless-stopped', 'on-failure'].some((p) => api.restart?.startsWith(p)));
  });

  test('workers scale (no fixed name, no host port), reserve an NVIDIA GPU, and get longer than their own grace to stop', () => {
    const worker = config.services.worker!;
    assert.equal(worker.container_name, undefined);
    assert.equal(worker.ports, undefined);
    const gpu = worker.deploy?.resources?.reservations?.devices?.[0];
    assert.ok(gpu && gpu.driver === 'nvidia' && gpu.capabilities.includes('gpu'), 'no NVIDIA GPU reservation');
    for (const name of ['worker', 'worker-cpu']) {
      const s = config.services[name]!;
      const grace = Number(s.environment?.WORKER_SHUTDOWN_GRACE_MS ?? 30_000);
      const stop = ms(s.stop_grace_period ?? '10s');
      // The worker waits grace + 2 s for its jobs, then records them failed: leave it 5 s more.
      assert.ok(stop >= grace + 7_000, `${name}: stop_grace_period ${s.stop_grace_period} is not longer than WORKER_SHUTDOWN_GRACE_MS ${grace} + 7 s`);
    }
    assert.ok(config.services['worker-cpu']!.profiles?.includes('cpu'));
  });

  test('storage is the S3-compatible service, shared by the API and every worker', () => {
    for (const name of ['api', 'worker', 'worker-cpu']) {
      const env = config.services[name]!.environment!;
      assert.equal(env.STORAGE_DRIVER, 's3');
      assert.equal(env.S3_ENDPOINT, 'http://minio:9000');
      assert.equal(env.S3_ACCESS_KEY_ID, config.services.minio!.environment!.MINIO_ROOT_USER);
    }
  });

  test('every image is pinned (no latest) and every variable graft reads is one the README documents', () => {
    for (const [name, s] of Object.entries(config.services)) {
      if (s.build) continue;
      const tag = s.image?.split(':').at(-1);
      assert.ok(s.image?.includes(':') && tag !== 'latest', `${name}: image ${s.image} is not pinned`);
    }
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| `([A-Z0-9_]+)`(?: \/ `([A-Z0-9_]+)`)?/gm)].flatMap((m) => [m[1], m[2]]).filter(Boolean));
    for (const name of ['migrate', 'api', 'worker', 'worker-cpu']) {
      for (const key of Object.keys(config.services[name]!.environment ?? {})) {
        assert.ok(documented.has(key), `${name}: ${key} is not in the README's variables table`);
      }
    }
  });
});
