/**
 * Which authentication a configuration runs with. AUTH=none (no keys, every request is tenant
 * `default`) is for development on one's own machine: it is refused unless the API listens on a
 * loopback address, so a server reachable from a network always asks for keys.
 */
import { isIP } from 'node:net';

export type AuthMode = 'keys' | 'none';

/** Whether an address (HOST) only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** The mode to run in, or an error saying why this configuration may not start. */
export function authModeOf(config: { AUTH: 'auto' | 'keys' | 'none'; HOST: string }): AuthMode {
  const loopback = isLoopbackHost(config.HOST);
  if (config.AUTH === 'none' && !loopback) {
    throw new Error(
      `AUTH=none serves every request without an API key, so it is only allowed on a loopback address, and HOST is ${config.HOST}. ` +
        'Set AUTH=keys (create keys with `npm run admin -- keys create --tenant <id>`), or HOST=127.0.0.1.',
    );
  }
  if (config.AUTH === 'auto') return loopback ? 'none' : 'keys';
  return config.AUTH;
}
