// Debian's Chromium for the dashboard's browser tests (playwright-core drives it; it never
// downloads a browser). Installed with apt when missing and this process may (root, apt-get).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function ensureChromium(log = (msg) => console.error(msg)) {
  if (existsSync(CHROMIUM)) return true;
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    log(`[setup] ${CHROMIUM} is missing and cannot be installed here (apt-get as root): the dashboard's browser test will fail; install Debian's chromium or set CHROMIUM_PATH`);
    return false;
  }
  log('[setup] installing chromium (Debian) for the dashboard\'s browser test');
  const apt = (args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (apt(['install', '-y', '--no-install-recommends', 'chromium']).status !== 0) {
    apt(['update', '-qq']);
    apt(['install', '-y', '--no-install-recommends', 'chromium']);
  }
  return existsSync(CHROMIUM);
}
