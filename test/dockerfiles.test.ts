/**
 * The images, checked without a Docker engine (the development and CI machines have none):
 * `dockerfile-utils` lints both files (syntax, flags, instruction forms), then graft's own rules,
 * the ones hadolint would apply that matter here plus what the images promise: pinned bases,
 * dependencies installed before the sources, production dependencies only, one TensorFlow binding
 * each, a non-root user, a HEALTHCHECK, exec-form commands, and the Node line of .nvmrc.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

/** Diagnostics carry the language-server severity: 1 error, 2 warning (3 information, 4 hint). */
const serious = (d: { severity?: number }) => d.severity === 1 || d.severity === 2;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (f: string) => readFileSync(`${ROOT}${f}`, 'utf8');

interface Step {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  name: string;
  from: string;
  steps: Step[];
}

/** Stages with their instructions; `${ARG}`s declared before the first FROM are resolved to their defaults. */
function parse(file: string): { stages: Stage[]; args: Record<string, string> } {
  const text = read(file);
  const lines = text.split('\n');
  const df = DockerfileParser.parse(text);
  const args: Record<string, string> = {};
  for (const a of df.getInitialARGs()) {
    const p = a.getProperty();
    if (p?.getValue()) args[p.getName()] = p.getValue()!;
  }
  const resolve = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => args[a ?? b] ?? `\${${a ?? b}}`);
  const stages: Stage[] = [];
  for (const ins of df.getInstructions()) {
    const keyword = ins.getKeyword().toUpperCase();
    const { start, end } = ins.getRange();
    // The instruction's own text, flags included (getArgumentsContent leaves flags such as --from out).
    const raw = lines.slice(start.line, end.line + 1).join('\n');
    const args = raw.slice(raw.search(/\s/) + 1);
    const line = start.line + 1;
    if (keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args.trim());
      assert.ok(m, `${file}:${line}: unreadable FROM`);
      stages.push({ name: m[2] ?? `#${stages.length}`, from: resolve(m[1]!), steps: [] });
    } else if (stages.length) {
      stages.at(-1)!.steps.push({ keyword, args: args.replace(/\\\n/g, ' ').replace(/\s+/g, ' '), line });
    }
  }
  return { stages, args };
}

const stage = (stages: Stage[], name: string) => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `no stage ${name}`);
  return s;
};
const index = (s: Stage, pred: (st: Step) => boolean) => s.steps.findIndex(pred);
/** The stage and every stage it is built FROM, nearest first. */
function lineage(stages: Stage[], name: string): Stage[] {
  const out: Stage[] = [];
  for (let s = stages.find((x) => x.name === name); s; s = stages.find((x) => x.name === s!.from)) out.push(s);
  return out;
}

const nvmrc = read('.nvmrc').trim();
const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;

for (const [file, targets] of [
  ['Dockerfile', ['api', 'worker']],
  ['Dockerfile.gpu', ['worker-gpu']],
] as const) {
  describe(file, () => {
    const { stages, args } = parse(file);

    test('dockerfile-utils finds no error or warning', () => {
      const problems = validate(read(file), {}).filter(serious);
      assert.deepEqual(problems.map((d) => `${file}:${d.range.start.line + 1}: ${d.message}`), []);
    });

    test('every base image is pinned to a tag (never latest) and Node is the .nvmrc line', () => {
      const names = new Set(stages.map((s) => s.name));
      for (const s of stages) {
        if (names.has(s.from)) continue;
        const tag = s.from.split(':')[1];
        assert.ok(tag && tag !== 'latest', `${file}: stage ${s.name} uses ${s.from} without a pinned tag`);
      }
      const node = args.NODE_IMAGE;
      assert.match(node ?? '',  new RegExp(`^node:${nvmrc}[.-]`), `NODE_IMAGE ${node} is not Node ${nvmrc} (.nvmrc)`);
      assert.match(engines, new RegExp(`^>=${nvmrc}\\.`), `package.json engines ${engines} does not start at Node ${nvmrc}`);
    });

    for (const target of targets) {
      test(`${target}: dependencies before sources, production only, non-root, HEALTHCHECK, exec form`, () => {
        const chain = lineage(stages, target);
        const steps = chain.reverse().flatMap((s) => s.steps);
        const deps = index({ name: '', from: '', steps }, (s) => s.keyword === 'COPY' && /--from=deps\b/.test(s.args));
        const sources = index({ name: '', from: '', steps }, (s) => s.keyword === 'COPY' && /^\.\s+\.$/.test(s.args.trim()));
        assert.ok(deps >= 0 && sources > deps, `${target}: node_modules (COPY --from=deps) must come before the sources (COPY . .)`);
        const install = stage(stages, 'deps').steps.find((s) => s.keyword === 'RUN' && /\bnpm ci\b/.test(s.args));
        assert.ok(install && /--omit=dev/.test(install.args), 'the deps stage installs production dependencies only');
        const users = steps.filter((s) => s.keyword === 'USER');
        assert.ok(users.length && !/^(root|0)(:|$)/.test(users.at(-1)!.args.trim()), `${target}: the last USER must not be root`);
        assert.ok(steps.some((s) => s.keyword === 'HEALTHCHECK' && /CMD\s*\[/.test(s.args)), `${target}: HEALTHCHECK in exec form`);
        const run = steps.filter((s) => s.keyword === 'CMD' || s.keyword === 'ENTRYPOINT').at(-1);
        assert.ok(run && run.args.trim().startsWith('['), `${target}: CMD/ENTRYPOINT in exec form (signals reach node)`);
      });
    }
  });
}

test('the linter is not a formality: it reports a broken Dockerfile', () => {
  const problems = validate('FROM node:22-bookworm-slim\nCOPY --chwon=node . .\nHEALTHCHECK CMD\nEXPOSE abc\n', {});
  assert.ok(problems.filter(serious).length >= 3, JSON.stringify(problems.map((d) => d.message)));
});

describe('what each image runs', () => {
  test('Dockerfile.gpu: CUDA 11.2 + cuDNN 8 base, only tfjs-node-gpu built, the worker as entrypoint', () => {
    const { stages } = parse('Dockerfile.gpu');
    const worker = stage(stages, 'worker-gpu');
    assert.match(worker.from, /^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-/);
    const deps = stage(stages, 'deps').steps.map((s) => s.args).join('\n');
    assert.match(deps, /rm -rf node_modules\/@tensorflow\/tfjs-node(\s|$)/, 'the CPU binding is removed');
    assert.match(deps, /npm rebuild @tensorflow\/tfjs-node-gpu(\s|$)/);
    assert.doesNotMatch(deps, /npm rebuild[^\n&]*@tensorflow\/tfjs-node(\s|$)/);
    const entry = worker.steps.find((s) => s.keyword === 'ENTRYPOINT')!;
    assert.deepEqual(JSON.parse(entry.args), ['node', '--import', 'tsx', 'apps/worker/src/main.ts']);
    assert.ok(worker.steps.some((s) => s.keyword === 'ENV' && /GRAFT_TF_BACKEND=node-gpu/.test(s.args)));
  });

  test('Dockerfile: the API image builds the dashboard and ships only its output (DASHBOARD_DIR default)', () => {
    const { stages } = parse('Dockerfile');
    const build = stage(stages, 'dashboard').steps.filter((s) => s.keyword === 'RUN').map((s) => s.args).join('\n');
    assert.match(build, /vite\.js build --config apps\/dashboard\/vite\.config\.ts/);
    assert.match(build, /packages\/client\/scripts\/build\.mjs/, 'the client package the dashboard bundles is built first');
    assert.ok(stage(stages, 'runtime').steps.some((s) => s.keyword === 'COPY' && /--from=dashboard\s+\/app\/apps\/dashboard\/dist\s+\.\/apps\/dashboard\/dist/.test(s.args)));
  });

  test('Dockerfile: the API and a CPU worker with only tfjs-node built', () => {
    const { stages } = parse('Dockerfile');
    const deps = stage(stages, 'deps').steps.map((s) => s.args).join('\n');
    assert.match(deps, /rm -rf node_modules\/@tensorflow\/tfjs-node-gpu(\s|$)/);
    assert.match(deps, /npm rebuild @tensorflow\/tfjs-node(\s|$)/);
    assert.deepEqual(JSON.parse(stage(stages, 'api').steps.find((s) => s.keyword === 'CMD')!.args), ['node', '--import', 'tsx', 'apps/api/src/main.ts']);
    assert.deepEqual(JSON.parse(stage(stages, 'worker').steps.find((s) => s.keyword === 'ENTRYPOINT')!.args), ['node', '--import', 'tsx', 'apps/worker/src/main.ts']);
  });

  test('tsx, which runs the sources in the images, is a production dependency of both apps', () => {
    for (const app of ['api', 'worker']) {
      const pkg = JSON.parse(read(`apps/${app}/package.json`)) as { dependencies: Record<string, string> };
      assert.ok(pkg.dependencies.tsx, `apps/${app} lacks tsx in dependencies`);
    }
  });
});
