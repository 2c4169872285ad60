/** docker-compose.yml is valid (checked with `docker-compose config` where the tool is installed). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const available = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;

test('docker-compose.yml validates', { skip: available ? false : 'docker-compose is not installed' }, () => {
  const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
