/** The outbound guard against real sockets on loopback: refused by default, allowed by the operator's list. */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { blockedReason, fetchOutbound, guardedFetch, isAllowListed, OutboundError, parseAllowList, UNREACHABLE_MESSAGE } from '../src/index.ts';

const servers: { close(): unknown }[] = [];
after(() => servers.forEach((s) => s.close()));

async function serve(handler: RequestListener): Promise<{ port: number; url: string; server: Server }> {
  const server = createHttpServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, server };
}

/** A port where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function refusal(p: Promise<unknown>): Promise<OutboundError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OutboundError, `expected an OutboundError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('address policy', () => {
  test('refuses loopback, private, CGNAT, link-local, metadata, reserved and their IPv6 forms; passes public addresses', () => {
    const blocked = [
      '127.0.0.1', '127.255.0.9', '0.0.0.0', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.100.100.200',
      '169.254.169.254', '192.0.0.192', '198.18.0.1', '224.0.0.1', '255.255.255.255', '192.0.2.1',
      '::1', '::', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd00:ec2::254', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254',
      '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::127.0.0.1', '2002:7f00:1::', '2002:c0a8:101::1', '2001::1', '2001:db8::1', '[::1]',
      'not-an-ip',
    ];
    for (const a of blocked) assert.ok(blockedReason(a), `${a} should be refused`);
    for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001::1', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1']) {
      assert.equal(blockedReason(a), null, `${a} should pass`);
    }
    assert.match(blockedReason('169.254.169.254')!, /metadata/);
    assert.match(blockedReason('::ffff:127.0.0.1')!, /IPv4-mapped loopback/);
  });

  test('the allow-list takes addresses, ranges and ports, and refuses what it cannot read', () => {
    const allow = parseAllowList('127.0.0.1:8080, 10.0.0.0/8 [::1]:9000 [fd00::/8]');
    assert.ok(isAllowListed('127.0.0.1', 8080, allow));
    assert.ok(!isAllowListed('127.0.0.1', 8081, allow));
    assert.ok(isAllowListed('::ffff:127.0.0.1', 8080, allow));
    assert.ok(isAllowListed('10.9.9.9', 1, allow));
    assert.ok(isAllowListed('::1', 9000, allow) && !isAllowListed('::1', 9001, allow));
    assert.ok(isAllowListed('fd12::1', 443, allow));
    assert.ok(!isAllowListed('11.0.0.1', 80, allow));
    for (const bad of ['localhost', '10.0.0.0/33', '127.0.0.1:0', '1.2.3', '::1/200', '10.0.0.0/8/1']) assert.throws(() => parseAllowList(bad), /invalid allow-list entry/, bad);
    assert.deepEqual(parseAllowList(''), []);
  });
});

describe('requests', () => {
  test('a server on loopback is refused by default (by IP, by name, over IPv6) and reached when allow-listed', async () => {
    const { port, url } = await serve((_req, res) => res.end('hello'));
    for (const u of [url, `http://localhost:${port}/`, `http://[::1]:${port}/`, `http://0.0.0.0:${port}/`, `http://2130706433:${port}/`]) {
      const err = await refusal(fetchOutbound(u));
      assert.equal(err.code, 'forbidden_address', u);
      assert.equal(err.message, UNREACHABLE_MESSAGE);
    }
    const ok = await fetchOutbound(`${url}/x`, { allow: `127.0.0.1:${port}` });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'hello');
    assert.equal((await fetchOutbound(`http://localhost:${port}/`, { allow: '127.0.0.0/8' })).status, 200);
    // Another port of the same host stays refused.
    assert.equal((await refusal(fetchOutbound(url, { allow: `127.0.0.1:${port + 1}` }))).code, 'forbidden_address');
  });

  test('only http and https', async () => {
    for (const u of ['file:///etc/passwd', 'ftp://example.com/', 'gopher://127.0.0.1:6379/_INFO', 'data:,hi', 'not a url']) {
      assert.equal((await refusal(fetchOutbound(u))).code, 'invalid_url', u);
    }
  });

  test('each redirect hop is checked again: a redirect to loopback, metadata or another port is refused', async () => {
    const inner = await serve((_req, res) => res.end('secret'));
    const hops = await serve((req, res) => {
      const to: Record<string, string> = {
        '/to-loopback': `${inner.url}/`,
        '/to-localhost': `http://localhost:${inner.port}/`,
        '/to-metadata': 'http://169.254.169.254/latest/meta-data/',
        '/to-mapped': `http://[::ffff:127.0.0.1]:${inner.port}/`,
        '/to-file': 'file:///etc/passwd',
        '/loop': '/loop',
        '/relative': '/final',
      };
      if (req.url === '/final') return void res.end('final');
      res.writeHead(302, { location: to[req.url ?? ''] ?? '/final' }).end();
    });
    const allow = `127.0.0.1:${hops.port}`;
    for (const path of ['/to-loopback', '/to-localhost', '/to-metadata', '/to-mapped']) {
      const err = await refusal(fetchOutbound(`${hops.url}${path}`, { allow }));
      assert.equal(err.code, 'forbidden_address', path);
      assert.equal(err.message, UNREACHABLE_MESSAGE);
    }
    assert.equal((await refusal(fetchOutbound(`${hops.url}/to-file`, { allow }))).code, 'invalid_url');
    assert.equal((await refusal(fetchOutbound(`${hops.url}/loop`, { allow, maxRedirects: 3 }))).code, 'too_many_redirects');
    const ok = await fetchOutbound(`${hops.url}/relative`, { allow });
    assert.equal(ok.body.toString(), 'final');
    assert.equal(ok.url, `${hops.url}/final`);
    const unfollowed = await fetchOutbound(`${hops.url}/to-metadata`, { allow, maxRedirects: 0 });
    assert.equal(unfollowed.status, 302);
  });

  test('the body is bounded in bytes, declared or not', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 1);
    const s = await serve((req, res) => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'transfer-encoding': 'chunked' });
        for (let i = 0; i < 32; i++) res.write(big.subarray(0, 64 * 1024));
        return void res.end();
      }
      res.end(big);
    });
    const allow = `127.0.0.1:${s.port}`;
    for (const path of ['/declared', '/chunked']) {
      const err = await refusal(fetchOutbound(`${s.url}${path}`, { allow, maxBytes: 1024 * 1024 }));
      assert.equal(err.code, 'too_large', path);
      assert.match(err.message, /1048576 bytes/);
    }
    assert.equal((await fetchOutbound(`${s.url}/declared`, { allow, maxBytes: 4 * 1024 * 1024 })).body.length, big.length);
  });

  test('the whole exchange is bounded in time: a silent server and a body that stalls', async () => {
    const s = await serve((req, res) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('part');
      }
      // otherwise: never answers
    });
    const allow = `127.0.0.1:${s.port}`;
    for (const path of ['/silent', '/stall-body']) {
      const t0 = Date.now();
      const err = await refusal(fetchOutbound(`${s.url}${path}`, { allow, timeoutMs: 400 }));
      const took = Date.now() - t0;
      assert.equal(err.code, 'timeout', path);
      assert.equal(err.message, UNREACHABLE_MESSAGE);
      assert.ok(took >= 380 && took < 3000, `${path} took ${took} ms`);
    }
    s.server.closeAllConnections();
  });

  test('a closed port, an open port speaking another protocol, a silent port and a refused address read the same', async () => {
    const closed = await closedPort();
    const tcp = createTcpServer((sock) => sock.end('SSH-2.0-OpenSSH_9.2\r\n'));
    servers.push(tcp);
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const silent = createTcpServer(() => {});
    servers.push(silent);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const open = (tcp.address() as AddressInfo).port;
    const quiet = (silent.address() as AddressInfo).port;
    const errors = [
      await refusal(fetchOutbound(`http://127.0.0.1:${closed}/`, { allow: '127.0.0.1' })),
      await refusal(fetchOutbound(`http://127.0.0.1:${open}/`, { allow: '127.0.0.1' })),
      await refusal(fetchOutbound(`http://127.0.0.1:${quiet}/`, { allow: '127.0.0.1', timeoutMs: 300 })),
      await refusal(fetchOutbound(`http://127.0.0.1:${closed}/`)),
      await refusal(fetchOutbound(`http://127.0.0.1:${open}/`)),
      await refusal(fetchOutbound('http://no-such-host.invalid/')),
    ];
    assert.deepEqual(errors.map((e) => e.code), ['unreachable', 'unreachable', 'timeout', 'forbidden_address', 'forbidden_address', 'unreachable']);
    assert.equal(new Set(errors.map((e) => e.message)).size, 1, errors.map((e) => e.message).join(' | '));
    for (const e of errors) assert.doesNotMatch(e.message, /SSH|127\.0\.0\.1|ECONN|refused|\d{4,5}/);
    assert.match(errors[1]!.detail, /HPE|Parse|parse/); // the detail, for logs, says what happened
  });

  test('guardedFetch is a fetch: status, headers and body, with the same guard', async () => {
    const s = await serve((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => res.writeHead(201, { 'x-seen': `${req.method} ${req.headers['x-sig']} ${body}` }).end('{"ok":true}'));
    });
    const f = guardedFetch({ allow: `127.0.0.1:${s.port}` });
    const res = await f(`${s.url}/hook`, { method: 'POST', headers: { 'x-sig': 'v1,abc' }, body: 'payload' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-seen'), 'POST v1,abc payload');
    assert.deepEqual(await res.json(), { ok: true });
    await assert.rejects(guardedFetch()(`${s.url}/hook`), (e: unknown) => e instanceof OutboundError && e.code === 'forbidden_address');
  });

  test("the caller's own abort stays an abort", async () => {
    const s = await serve(() => {});
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 100);
    await assert.rejects(fetchOutbound(s.url, { allow: `127.0.0.1:${s.port}`, signal: ac.signal }), /stop/);
    s.server.closeAllConnections();
  });
});
