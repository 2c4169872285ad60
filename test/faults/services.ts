/**
 * A Postgres and a Redis of the test's own (temporary directories, free loopback ports), so the
 * fault tests can stop, kill and freeze them without touching the shared services. Each runs in
 * its own process group: SIGSTOP on the group freezes the postmaster and every backend at once.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A managed service process: start, stop (clean), kill (SIGKILL), freeze/thaw (SIGSTOP/SIGCONT). */
abstract class Service {
  protected proc: ChildProcess | null = null;
  protected log = '';
  abstract readonly url: string;
  protected abstract spawnArgs(): { cmd: string; args: string[]; uid?: number; gid?: number };
  protected abstract ready(): boolean;

  async start(): Promise<void> {
    const { cmd, args, uid, gid } = this.spawnArgs();
    const proc = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...(uid !== undefined ? { uid, gid } : {}) });
    proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = proc;
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}:\n${this.log.slice(-2000)}`))));
    await Promise.race([until(`${cmd} to be ready`, () => this.ready()), exited]);
    exited.catch(() => {});
  }

  /**
   * Signals the process and every descendant: Postgres backends call setsid(), so the process
   * group alone would leave them running.
   */
  private signal(sig: NodeJS.Signals): void {
    if (!this.proc?.pid || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    for (const pid of [this.proc.pid, ...descendants(this.proc.pid)]) {
      try {
        process.kill(pid, sig);
      } catch {
        // exited meanwhile
      }
    }
  }

  freeze(): void {
    this.signal('SIGSTOP');
  }

  thaw(): void {
    this.signal('SIGCONT');
  }

  /** Stops the process (the group's leader gets `sig`) and waits for it to exit. */
  async stop(sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    this.signal('SIGCONT');
    if (sig === 'SIGKILL') this.signal('SIGKILL');
    else proc.kill(sig);
    await exited;
    this.proc = null;
  }

  output(): string {
    return this.log;
  }
}

const PG_BIN = (() => {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const v = versions.find((d) => existsSync(join(root, d, 'bin', 'postgres')));
  return v ? join(root, v, 'bin') : null;
})();

/** As root, Postgres must run as another user: the `postgres` system user that Debian's package creates. */
function pgUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('running as root needs a `postgres` system user for the test Postgres');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export class TestPostgres extends Service {
  private dir = '';
  port = 0;
  private user = pgUser();

  static available(): boolean {
    return PG_BIN !== null;
  }

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/graft`;
  }

  async init(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'graft-faults-pg-'));
    if (this.user) chownSync(this.dir, this.user.uid, this.user.gid);
    const r = spawnSync(join(PG_BIN!, 'initdb'), ['-D', join(this.dir, 'data'), '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], {
      encoding: 'utf8', ...(this.user ?? {}),
    });
    if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}`);
    this.port = await freePort();
    await this.start();
  }

  protected spawnArgs() {
    return {
      cmd: join(PG_BIN!, 'postgres'),
      args: ['-D', join(this.dir, 'data'), '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=60'],
      ...(this.user ?? {}),
    };
  }

  protected ready(): boolean {
    const r = spawnSync(join(PG_BIN!, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.port), '-q']);
    return r.status === 0;
  }

  /** A fast shutdown (SIGINT): what `pg_ctl stop -m fast` does. */
  async shutdown(): Promise<void> {
    await this.stop('SIGINT');
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis without persistence: a restart loses every key, as the "Redis restarted" case. */
export class TestRedis extends Service {
  port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async init(): Promise<void> {
    this.port = await freePort();
    await this.start();
  }

  protected spawnArgs() {
    return { cmd: 'redis-server', args: ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'] };
  }

  protected ready(): boolean {
    return this.log.includes('Ready to accept connections');
  }

  async restart(): Promise<void> {
    await this.stop('SIGKILL');
    this.log = '';
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => {});
  }
}
