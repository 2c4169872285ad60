/**
 * Which network addresses graft may connect to on a user's behalf. Only public unicast addresses,
 * unless an operator allows more: loopback, "this network", private (RFC 1918, IPv6 ULA), CGNAT,
 * link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254 fall in these), multicast,
 * documentation, benchmarking and reserved ranges are refused. IPv6 forms that carry an IPv4
 * address (v4-mapped, v4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that
 * IPv4 address; Teredo and the other IETF special blocks are refused outright.
 */
import { isIP } from 'node:net';

/** An address as bytes: 4 (IPv4) or 16 (IPv6). */
type Bytes = readonly number[];

interface Range {
  bytes: Bytes;
  prefix: number;
  name: string;
}

function v4(text: string): number[] | null {
  if (isIP(text) !== 4) return null;
  return text.split('.').map(Number);
}

function v6(text: string): number[] | null {
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isIP(s) !== 6) return null;
  // A trailing dotted IPv4 becomes two hextets.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const b = v4(dotted[1]!)!;
    s = `${s.slice(0, dotted.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** The bytes of an IPv4 or IPv6 address (brackets and zone ids allowed), or null when it is not one. */
export function addressBytes(address: string): number[] | null {
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  return v4(a) ?? v6(a);
}

function range(cidr: string, name: string): Range {
  const [addr, bits] = cidr.split('/');
  const bytes = addressBytes(addr!);
  if (!bytes) throw new Error(`bad range ${cidr}`);
  return { bytes, prefix: bits === undefined ? bytes.length * 8 : Number(bits), name };
}

function inRange(bytes: Bytes, r: Range): boolean {
  if (bytes.length !== r.bytes.length) return false;
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (r.bytes[i]! & mask)) return false;
  }
  return true;
}

const V4_BLOCKED: Range[] = [
  range('0.0.0.0/8', '"this network"'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'carrier-grade NAT'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local (cloud metadata)'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'IETF protocol assignments'),
  range('192.0.2.0/24', 'documentation'),
  range('192.88.99.0/24', '6to4 relay anycast'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('240.0.0.0/4', 'reserved'),
];

const V6_BLOCKED: Range[] = [
  range('64:ff9b:1::/48', 'local-use NAT64'),
  range('100::/64', 'discard-only'),
  range('2001::/23', 'IETF protocol assignments (Teredo, ...)'),
  range('2001:db8::/32', 'documentation'),
  range('3fff::/20', 'documentation'),
  range('5f00::/16', 'segment routing'),
];
const V6_GLOBAL = range('2000::/3', 'global unicast');

/** IPv6 forms that embed an IPv4 address: [range, offset of the IPv4 bytes]. */
const V6_EMBEDDING: [Range, number][] = [
  [range('::ffff:0:0/96', 'IPv4-mapped'), 12],
  [range('::/96', 'IPv4-compatible'), 12],
  [range('64:ff9b::/96', 'NAT64'), 12],
  [range('2002::/16', '6to4'), 2],
];

/**
 * Why graft must not connect to this address (a short range name), or null when it is public.
 * Anything that does not parse as an address is refused.
 */
export function blockedReason(address: string): string | null {
  const bytes = addressBytes(address);
  if (!bytes) return 'not an IP address';
  if (bytes.length === 4) return V4_BLOCKED.find((r) => inRange(bytes, r))?.name ?? null;
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15]! <= 1) return bytes[15] === 1 ? 'loopback' : 'unspecified';
  for (const [r, at] of V6_EMBEDDING) {
    if (!inRange(bytes, r)) continue;
    if (r.name === 'IPv4-compatible') return 'IPv4-compatible (deprecated)';
    const why = blockedReason(bytes.slice(at, at + 4).join('.'));
    return why ? `${r.name} ${why}` : null;
  }
  if (!inRange(bytes, V6_GLOBAL)) {
    if (inRange(bytes, range('fc00::/7', ''))) return 'unique local (private)';
    if (inRange(bytes, range('fe80::/10', ''))) return 'link-local';
    if (inRange(bytes, range('ff00::/8', ''))) return 'multicast';
    return 'reserved';
  }
  return V6_BLOCKED.find((r) => inRange(bytes, r))?.name ?? null;
}

/** One entry of the operator's allow-list: an address or CIDR range, optionally limited to one port. */
export interface AllowEntry {
  range: Range;
  port: number | null;
  text: string;
}

/**
 * Parses an allow-list: entries separated by commas or white space, each `address`, `address/prefix`,
 * optionally with `:port` (`127.0.0.1:8080`, `10.0.0.0/8`, `[::1]:8080`, `[fd00::/8]:443`).
 * Throws on an entry it cannot read, naming it (a typo must not silently allow nothing or everything).
 */
export function parseAllowList(text: string | undefined): AllowEntry[] {
  const out: AllowEntry[] = [];
  for (const raw of (text ?? '').split(/[\s,]+/).filter(Boolean)) {
    let body = raw;
    let port: number | null = null;
    const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
    if (bracket) {
      body = bracket[1]!;
      port = bracket[2] !== undefined ? Number(bracket[2]) : null;
    } else if (!raw.includes('::') && raw.split(':').length === 2) {
      const [a, p] = raw.split(':');
      body = a!;
      port = Number(p);
    }
    const [addr, bits, ...rest] = body.split('/');
    const bytes = addr ? addressBytes(addr) : null;
    const prefix = bits === undefined ? (bytes?.length ?? 0) * 8 : /^\d+$/.test(bits) ? Number(bits) : NaN;
    if (!bytes || rest.length || !(prefix >= 0 && prefix <= bytes.length * 8) || (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536))) {
      throw new Error(`invalid allow-list entry "${raw}": expected an IP address or CIDR range, optionally with :port (e.g. 127.0.0.1:8080, 10.0.0.0/8, [::1]:8080)`);
    }
    out.push({ range: { bytes, prefix, name: raw }, port, text: raw });
  }
  return out;
}

/** Whether the operator's allow-list lets graft connect to this address and port. */
export function isAllowListed(address: string, port: number, allow: readonly AllowEntry[]): boolean {
  const bytes = addressBytes(address);
  if (!bytes) return false;
  // An IPv4-mapped IPv6 address is matched as its IPv4 address too.
  const mapped = bytes.length === 16 && inRange(bytes, V6_EMBEDDING[0]![0]) ? bytes.slice(12) : null;
  return allow.some((e) => (e.port === null || e.port === port) && (inRange(bytes, e.range) || (mapped !== null && inRange(mapped, e.range))));
}

/** Null when graft may connect to address:port, else why not (for logs only, never for clients). */
export function checkAddress(address: string, port: number, allow: readonly AllowEntry[]): string | null {
  if (isAllowListed(address, port, allow)) return null;
  const why = blockedReason(address);
  return why ? `${address} is ${why}` : null;
}
