import { CommonEnv, loadEnv } from '@graft/contracts';
import { Type, type Static } from 'typebox';

export const ApiEnv = Type.Object({
  ...CommonEnv,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ default: '127.0.0.1' }),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1024, default: 256 * 1024 * 1024, description: 'Largest dataset archive accepted (413 beyond).' }),
  SSE_HEARTBEAT_MS: Type.Integer({ minimum: 100, default: 15_000, description: 'Server-Sent Events: a comment line after this long without a message (keeps proxies from closing the stream).' }),
  FEED_POLL_MS: Type.Integer({ minimum: 100, default: 5_000, description: 'Server-Sent Events: a watched job is read this often even without a Redis nudge (a lost nudge only delays).' }),
});
export type ApiConfig = Static<typeof ApiEnv>;

export const loadApiConfig = (env: NodeJS.ProcessEnv = process.env): ApiConfig => loadEnv(ApiEnv, env);
