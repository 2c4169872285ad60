/** Webhook signing against the Standard Webhooks specification's published test vector. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newWebhookSecret, signWebhook, verifyWebhook, webhookHeaders } from '../src/webhooks.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const BODY = '{"test": 2432232314}';

test('signs as the Standard Webhooks reference does', () => {
  assert.equal(signWebhook(SECRET, ID, TS, BODY), 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
});

test('verifies its own headers; refuses another body, another secret, an old timestamp, a missing header', () => {
  const secret = newWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const body = JSON.stringify({ type: 'fine_tune.succeeded', timestamp: new Date().toISOString(), data: {} });
  const headers = webhookHeaders(secret, 'msg_1', body);
  assert.equal(verifyWebhook(secret, headers, body).type, 'fine_tune.succeeded');
  // Several signatures (a rotated secret): any one matching is enough.
  assert.ok(verifyWebhook(secret, { ...headers, 'webhook-signature': `v1,AAAA ${headers['webhook-signature']}` }, body));
  assert.throws(() => verifyWebhook(secret, headers, body.replace('succeeded', 'failed')), /no matching signature/);
  assert.throws(() => verifyWebhook(newWebhookSecret(), headers, body), /no matching signature/);
  const old = webhookHeaders(secret, 'msg_1', body, Date.now() - 10 * 60_000);
  assert.throws(() => verifyWebhook(secret, old, body), /too old/);
  assert.throws(() => verifyWebhook(secret, { ...headers, 'webhook-id': undefined }, body), /missing/);
});
