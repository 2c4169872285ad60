/**
 * A Python with PyTorch for the reference runs, installed when missing: the default python3's torch,
 * else Debian's python3-torch (`/usr/bin/python3`), else the torch wheel in the local wheel directory
 * `PIP_FIND_LINKS` names (pip install), else `apt-get install python3-torch` when root.
 * Returns the interpreter, or why there is none and how to get one.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const hasTorch = (python: string) => spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const log = (msg: string) => console.error(`[bench] ${msg}`);

export function findTorchPython(opts: { install: boolean }): { python: string } | { missing: string } {
  // The pip wheel (PyTorch 2.x) first: it is the newer, faster PyTorch; Debian's is 1.13.
  const candidates = ['python3', '/usr/bin/python3'];
  for (const p of candidates) if (hasTorch(p)) return { python: p };
  if (!opts.install) return { missing: 'no python3 with torch (run without --no-install, or install python3-torch)' };
  const wheels = process.env.PIP_FIND_LINKS;
  const wheel = wheels && existsSync(wheels) ? readdirSync(wheels).find((f) => /^torch-.*\.whl$/.test(f)) : undefined;
  if (wheel && spawnSync('python3', ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) {
    log(`installing ${wheel} from ${wheels}`);
    spawnSync('python3', ['-m', 'pip', 'install', '--quiet', join(wheels!, wheel)], { stdio: 'inherit' });
    if (hasTorch('python3')) return { python: 'python3' };
  }
  if (process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0) {
    log('installing python3-torch (Debian)');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (hasTorch('/usr/bin/python3')) return { python: '/usr/bin/python3' };
  }
  return { missing: 'PyTorch is not installed and could not be installed: `apt-get install python3-torch` (then /usr/bin/python3) or `pip install torch`' };
}
