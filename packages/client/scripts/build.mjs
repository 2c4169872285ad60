#!/usr/bin/env node
// Builds @graft/client into dist/ with TypeScript's compiler: ESM JavaScript and declarations of
// src/, and the declarations of the contracts it takes its types from (dist/contracts/), so that the
// package installs from a tarball outside this workspace (`npm pack`) with its types complete. The
// JavaScript imports nothing but Node's and the platform's own (fetch); the declarations refer to
// `typebox` (a dependency for that reason only). Skipped when dist/ was built from the same sources
// (dist/.sources-hash); `--force` builds anyway.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const contracts = join(pkg, '..', 'contracts');
const dist = join(pkg, 'dist');
const stamp = join(dist, '.sources-hash');

const files = (dir) => readdirSync(dir).sort().flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
const inputs = [...files(join(pkg, 'src')), ...files(join(contracts, 'src')), join(pkg, 'tsconfig.build.json'), join(pkg, 'scripts', 'build.mjs')];
const hash = createHash('sha256');
for (const f of inputs) hash.update(relative(pkg, f)).update(readFileSync(f));
const digest = hash.digest('hex');
if (!process.argv.includes('--force') && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) process.exit(0);

const ts = createRequire(import.meta.url)('typescript');
const config = ts.getParsedCommandLineOfConfigFile(join(pkg, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
const srcOut = join(dist, 'client', 'src') + sep;
const contractsOut = join(dist, 'contracts', 'src') + sep;
const written = [];
rmSync(dist, { recursive: true, force: true });
const result = program.emit(undefined, (file, text) => {
  let out;
  if (file.startsWith(srcOut)) out = join(dist, file.slice(srcOut.length));
  else if (file.startsWith(contractsOut) && file.endsWith('.d.ts')) out = join(dist, 'contracts', file.slice(contractsOut.length));
  else return; // the contracts' JavaScript: not shipped (the client imports types only)
  if (out.endsWith('.d.ts')) {
    // Declarations keep the sources' specifiers: `./x.ts` becomes `./x.js`, the contracts a relative path.
    const toContracts = relative(dirname(out), join(dist, 'contracts', 'index.js')).split(sep).join('/');
    text = text
      .replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2')
      .replace(/(['"])@graft\/contracts\1/g, `$1${toContracts.startsWith('.') ? toContracts : `./${toContracts}`}$1`);
  } else if (/['"]@graft\/contracts['"]/.test(text)) {
    throw new Error(`${file} imports @graft/contracts at run time; the client may use its types only`);
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
  written.push(out);
});
const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
if (diagnostics.length) {
  console.error(ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => pkg, getNewLine: () => '\n' }));
  process.exit(1);
}
writeFileSync(stamp, digest);
console.error(`[client] built ${written.length} files into ${relative(process.cwd(), dist) || dist}`);
