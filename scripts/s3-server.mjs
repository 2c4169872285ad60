#!/usr/bin/env node
// A loopback S3-compatible server for tests and local trials: s3rver (npm) behind a gate that
// verifies AWS Signature Version 4 (header and presigned-query forms), which s3rver itself does
// not check. Prints one JSON line `{"endpoint": …}` when it listens; stops on SIGTERM/SIGINT.
//   node scripts/s3-server.mjs [--port 0] [--dir <data dir>]
// Credentials: access key S3RVER, secret S3RVER (s3rver's built-in account).
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const CREDENTIALS = { S3RVER: 'S3RVER' };
const ownDir = !arg('dir');
const directory = arg('dir') ?? mkdtempSync(join(tmpdir(), 'graft-s3-'));

const hmac = (key, data) => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256 = (data) => createHash('sha256').update(data, 'utf8').digest('hex');
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Why the request's SigV4 signature is wrong, or null when it is right (or the request is anonymous). */
function signatureProblem(req) {
  const url = new URL(req.url, 'http://x');
  const auth = req.headers.authorization;
  const query = url.searchParams;
  let credential, signedHeaders, signature, amzDate, payloadHash;
  if (auth) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)$/.exec(auth);
    if (!m) return 'unsupported Authorization header';
    [, credential, signedHeaders, signature] = m;
    amzDate = req.headers['x-amz-date'];
    payloadHash = req.headers['x-amz-content-sha256'] ?? 'UNSIGNED-PAYLOAD';
  } else if (query.get('X-Amz-Algorithm')) {
    if (query.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return 'unsupported algorithm';
    credential = query.get('X-Amz-Credential');
    signedHeaders = query.get('X-Amz-SignedHeaders');
    signature = query.get('X-Amz-Signature');
    amzDate = query.get('X-Amz-Date');
    payloadHash = 'UNSIGNED-PAYLOAD';
    const t = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (Date.now() > t + Number(query.get('X-Amz-Expires')) * 1000) return 'request has expired';
  } else return null;
  const [accessKey, date, region, service, terminator] = credential.split('/');
  const secret = CREDENTIALS[accessKey];
  if (!secret) return 'unknown access key';
  const pairs = [];
  for (const [k, v] of query) if (k !== 'X-Amz-Signature') pairs.push([enc(k), enc(v)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1));
  const names = signedHeaders.split(';');
  const canonicalHeaders = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonicalRequest = [req.method, url.pathname, pairs.map(([k, v]) => `${k}=${v}`).join('&'), canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = [date, region, service, terminator].join('/');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), terminator);
  return hmac(key, stringToSign).toString('hex') === signature ? null : 'signature does not match';
}

const s3 = new S3rver({ silent: true, directory, allowMismatchedSignatures: true });
await s3.configureBuckets();
const handle = s3.callback();
const server = http.createServer((req, res) => {
  const problem = signatureProblem(req);
  if (!problem) return handle(req, res);
  res.writeHead(403, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error>`);
});
server.listen(Number(arg('port', '0')), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${server.address().port}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', directory })}\n`);
});
const stop = () => server.close(() => {
  if (ownDir) rmSync(directory, { recursive: true, force: true });
  process.exit(0);
});
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Stop with the process that started us (the test command), whatever happens to it.
process.on('disconnect', stop);
