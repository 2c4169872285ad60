/**
 * Worker threads that start fast from TypeScript sources. Loading the sources through tsx inside a
 * thread costs a second module loader and a transpile of every file the thread reaches: about
 * 150 MB and seconds per thread for the text checks, 3.6–5.4 s before a prediction thread could
 * answer (bench/RESULTS.md). Instead, the entry is bundled once per process by esbuild (the compiler
 * tsx itself uses) into one plain JavaScript file under the temporary directory, named by its
 * content so processes running the same sources share it.
 *
 * Only the workspace's own sources go into the bundle. Every package from node_modules stays an
 * import of its installed file, by absolute URL (the bundle lives outside the tree): native addons
 * (tfjs-node, onnxruntime-node) load as they would from the sources, and a package reached twice is
 * one copy. Each bundled source keeps its own `import.meta.url`, so paths computed from it (the
 * models directory, `createRequire`) mean what they do unbundled. Should esbuild be unavailable, the
 * thread loads the sources through tsx.
 *
 * `runInThread` runs one task in a fresh thread (entry answers with `serveThreadTask`; a GraftError
 * thrown there is thrown again here with its code, message and param); pools that keep their
 * threads start them with `threadScript` + `startThread`.
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parentPort, Worker, type ResourceLimits, type WorkerOptions } from 'node:worker_threads';

type Answer<T> = { ok: true; value: T } | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined } } | { ok: false; unexpected: string };

/** How a thread is started: a plain JavaScript file, or the TypeScript entry through tsx. */
export type ThreadScript = { kind: 'js' | 'tsx'; url: URL };

const scripts = new Map<string, Promise<ThreadScript>>();

const META_URL = /\bimport\.meta\.url\b/g;

/**
 * Pure JavaScript packages bundled with the sources (tree-shaken; typebox alone is hundreds of
 * modules, which cost a check thread about a second to load one by one): none finds a file of its
 * own or shares state with a package that stays installed.
 */
const BUNDLED_PACKAGES = new Set(['typebox', 'csv-parse', 'yauzl', 'yazl', 'pngjs', 'jpeg-js', 'buffer-crc32', 'pend']);

/** The package a bare specifier names: `@scope/name` or `name`. */
const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

async function bundle(entry: URL): Promise<URL> {
  const esbuild = await import('esbuild');
  const built = await esbuild.build({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    outfile: `${basename(entry.pathname, '.ts')}.mjs`,
    logLevel: 'silent',
    // Bundled CommonJS packages (yauzl, pngjs) call require() for Node's own modules. (The expression is
    // split so that the rewrite below, when this file is itself bundled, leaves the string alone.)
    banner: { js: `import { createRequire as __graftCreateRequire } from 'node:module'; const require = __graftCreateRequire(import${'.meta.url'});` },
    plugins: [
      {
        name: 'graft-thread',
        setup(build) {
          // A bare import that resolves into node_modules stays an import, of the file Node would load.
          build.onResolve({ filter: /^[^./]/ }, async (args) => {
            if (args.pluginData === 'graft-thread' || args.path.startsWith('node:')) return undefined;
            if (BUNDLED_PACKAGES.has(packageOf(args.path))) return undefined;
            const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'graft-thread' });
            if (r.errors.length || r.external || !r.path) return { path: args.path, external: true };
            if (!r.path.split(/[\\/]/).includes('node_modules')) return undefined; // a workspace package: bundled
            // require() takes a path, import a URL.
            return { path: args.kind === 'require-call' ? r.path : pathToFileURL(r.path).href, external: true };
          });
          // Each source keeps the URL of its own file.
          build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
            if (args.path.split(/[\\/]/).includes('node_modules')) return undefined;
            const source = await readFile(args.path, 'utf8');
            if (source.search(META_URL) < 0) return undefined;
            const url = JSON.stringify(pathToFileURL(args.path).href);
            return { contents: source.replace(META_URL, url), loader: args.path.endsWith('x') ? 'tsx' : /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' };
          });
        },
      },
    ],
  });
  const code = built.outputFiles[0]!.contents;
  const path = join(tmpdir(), `graft-${basename(entry.pathname, '.ts')}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(path)) {
    const partial = `${path}.${process.pid}.tmp`;
    await writeFile(partial, code);
    await rename(partial, path);
  }
  return pathToFileURL(path);
}

/** The thread's code for `entry`: one JavaScript file bundled once per process, else the tsx way. A `.js` entry runs as it is. */
export function threadScript(entry: URL): Promise<ThreadScript> {
  let s = scripts.get(entry.href);
  if (!s) {
    s = entry.pathname.endsWith('.ts')
      ? bundle(entry).then(
          (url): ThreadScript => ({ kind: 'js', url }),
          (): ThreadScript => ({ kind: 'tsx', url: entry }),
        )
      : Promise.resolve({ kind: 'js', url: entry });
    scripts.set(entry.href, s);
  }
  return s;
}

/** Starts a thread on `script`. Nothing of the parent's command line is passed on (its --import tsx would start a loader the bundle does not need). */
export function startThread(script: ThreadScript, options: Omit<WorkerOptions, 'execArgv' | 'eval'> = {}): Worker {
  const opts = { ...options, execArgv: [] };
  if (script.kind === 'js') return new Worker(script.url, opts);
  // Without esbuild nothing is bundled, so this module runs from its source and resolves tsx from there.
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(script.url.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), opts);
}

/** Runs the task `entry` serves on `request` in a fresh worker thread, ended when it answers. */
export async function runInThread<T>(entry: URL, request: unknown, resourceLimits: ResourceLimits = {}): Promise<T> {
  const worker = startThread(await threadScript(entry), { resourceLimits, workerData: request });
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
