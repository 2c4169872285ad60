/**
 * The one error of an outbound request. Its `message` is safe to show to whoever supplied the URL:
 * a refused address, a closed port, an open port that speaks something else, a DNS failure and a
 * timeout all read the same, so the error cannot be used to map the network graft sits in. What
 * really happened is in `code` and `detail`, for logs only.
 */
export type OutboundErrorCode =
  | 'invalid_url' // not an absolute http(s) URL
  | 'forbidden_address' // resolves to an address graft may not reach (and not allow-listed)
  | 'unreachable' // DNS, connection, TLS or protocol failure
  | 'timeout' // the whole exchange took longer than its bound
  | 'too_many_redirects'
  | 'too_large'; // the answer is larger than its bound

/** Why a URL was not fetched, for anything that has to do with the target (see the class comment). */
export const UNREACHABLE_REASON = 'it gave no usable HTTP answer in time, or it is not a public address graft may connect to.';
export const UNREACHABLE_MESSAGE = `The URL cannot be fetched: ${UNREACHABLE_REASON}`;

const REASON: Record<OutboundErrorCode, (limit?: number) => string> = {
  invalid_url: () => 'it is not an absolute http:// or https:// URL.',
  forbidden_address: () => UNREACHABLE_REASON,
  unreachable: () => UNREACHABLE_REASON,
  timeout: () => UNREACHABLE_REASON,
  too_many_redirects: () => UNREACHABLE_REASON,
  too_large: (limit) => `the answer is larger than graft accepts (${limit} bytes).`,
};

export class OutboundError extends Error {
  readonly code: OutboundErrorCode;
  /** The message without its opening, to follow "… cannot be fetched: " in a caller's own message. */
  readonly reason: string;
  /** What happened, naming addresses and causes: for operators' logs, never for clients. */
  readonly detail: string;
  constructor(code: OutboundErrorCode, detail: string, limit?: number) {
    const reason = REASON[code](limit);
    super(`The URL cannot be fetched: ${reason}`);
    this.reason = reason;
    this.name = 'OutboundError';
    this.code = code;
    this.detail = detail;
  }
}
