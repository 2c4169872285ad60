export { addressBytes, blockedReason, checkAddress, isAllowListed, parseAllowList, type AllowEntry } from './address-policy.ts';
export { OutboundError, UNREACHABLE_MESSAGE, UNREACHABLE_REASON, type OutboundErrorCode } from './outbound-error.ts';
export { fetchOutbound, guardedFetch, openOutbound, OUTBOUND_DEFAULTS, type OutboundOptions, type OutboundResponse } from './outbound-request.ts';
