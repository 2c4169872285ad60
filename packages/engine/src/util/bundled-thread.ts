/**
 * Runs one task in a worker thread and answers its result: for CPU-bound checks the API must not
 * run on its event loop. As the text checks do (`tasks/text/dataset/thread.ts`, whose reasons this
 * follows), the thread runs plain JavaScript bundled once per process by esbuild from the
 * TypeScript entry (about 16 MB and a quarter of a second per thread, against 150 MB and seconds
 * through tsx), falling back to tsx when esbuild is missing. The entry answers with
 * `serveThreadTask`; a GraftError thrown in the thread is thrown again here with its code, message
 * and param.
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parentPort, Worker, type ResourceLimits } from 'node:worker_threads';

type Answer<T> = { ok: true; value: T } | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined } } | { ok: false; unexpected: string };

type Script = { kind: 'js' | 'tsx'; url: URL };
const scripts = new Map<string, Promise<Script>>();

function bundled(entry: URL): Promise<Script> {
  let s = scripts.get(entry.href);
  if (!s) {
    s = (async (): Promise<Script> => {
      if (!entry.pathname.endsWith('.ts')) return { kind: 'js', url: entry };
      try {
        const esbuild = await import('esbuild');
        const built = await esbuild.build({
          entryPoints: [fileURLToPath(entry)],
          bundle: true,
          platform: 'node',
          format: 'esm',
          target: 'node20',
          write: false,
          outfile: 'thread.mjs',
          logLevel: 'silent',
          external: ['esbuild'], // the runner itself, when an entry reaches it through an index
          // Bundled CommonJS dependencies (yauzl, pngjs) call require() for Node's own modules.
          banner: { js: "import { createRequire as __graftCreateRequire } from 'node:module'; const require = __graftCreateRequire(import.meta.url);" },
        });
        const code = built.outputFiles[0]!.contents;
        const path = join(tmpdir(), `graft-${basename(entry.pathname, '.ts')}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
        if (!existsSync(path)) {
          const partial = `${path}.${process.pid}.tmp`;
          await writeFile(partial, code);
          await rename(partial, path);
        }
        return { kind: 'js', url: pathToFileURL(path) };
      } catch {
        return { kind: 'tsx', url: entry };
      }
    })();
    scripts.set(entry.href, s);
  }
  return s;
}

/** Runs the task `entry` serves on `request` in a fresh worker thread, ended when it answers. */
export async function runInThread<T>(entry: URL, request: unknown, resourceLimits: ResourceLimits = {}): Promise<T> {
  const script = await bundled(entry);
  // Nothing of the parent's command line (its --import tsx would start a module loader the thread does not need).
  const options = { resourceLimits, execArgv: [], workerData: request };
  const worker =
    script.kind === 'js'
      ? new Worker(script.url, options)
      : new Worker(
          new URL(`data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(script.url.href)});`)}`),
          options,
        );
  try {
    const answer = await new Promise<Answer<T>>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the check thread ended (exit ${code}) without an answer`)));
    });
    if (answer.ok) return answer.value;
    if ('error' in answer) throw new GraftError(answer.error.code, answer.error.message, answer.error.param);
    throw new Error(answer.unexpected);
  } finally {
    await worker.terminate();
  }
}

/** In the thread's entry module: runs `task` on the request and posts its answer. */
export function serveThreadTask<Req, T>(task: (req: Req) => Promise<T>, request: Req): void {
  task(request).then(
    (value) => parentPort!.postMessage({ ok: true, value } satisfies Answer<T>),
    (err: unknown) =>
      parentPort!.postMessage(
        (err instanceof GraftError
          ? { ok: false, error: { code: err.code, message: err.message, param: err.param } }
          : { ok: false, unexpected: (err as Error)?.stack ?? String(err) }) satisfies Answer<T>,
      ),
  );
}
