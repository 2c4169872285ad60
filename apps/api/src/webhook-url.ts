/**
 * Checks a webhook URL when it is given (a job's `webhookUrl`, an endpoint's `url`): http(s), and
 * every address its host resolves to is one graft may send to (public, or in the operator's
 * `OUTBOUND_ALLOWLIST`). Deliveries are checked again when they connect (`@graft/outbound` pins the
 * checked address), so a name that later resolves elsewhere is refused then too.
 */
import { GraftError } from '@graft/contracts';
import { checkAddress, parseAllowList } from '@graft/outbound';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export async function checkWebhookUrl(text: string, allowList: string, param: string): Promise<string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GraftError('invalid_webhook_url', 'The webhook URL is not a valid absolute URL.', param);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new GraftError('invalid_webhook_url', 'A webhook URL must be http or https.', param);
  if (url.username || url.password) throw new GraftError('invalid_webhook_url', 'A webhook URL must not carry credentials; deliveries are signed instead.', param);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch {
    throw new GraftError('invalid_webhook_url', `The webhook host ${host} does not resolve.`, param);
  }
  const allow = parseAllowList(allowList);
  if (addresses.length === 0 || addresses.some((a) => checkAddress(a, port, allow) !== null)) {
    throw new GraftError('invalid_webhook_url', 'graft may not send to this address (loopback, link-local, private or reserved); an operator can allow it with OUTBOUND_ALLOWLIST.', param);
  }
  return url.href;
}
