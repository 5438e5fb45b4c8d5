import type {} from 'express-session';
import type { Logger } from 'pino';
import type { Principal } from '../access/principal.js';
import type { Ctx } from '../context.js';
import type { Tenant, TokenRecord } from '../tenants/store.js';

/** A bearer token (SCIM token or admin API key), or a signed-in person's browser session. */
export type Authenticated =
  | { kind: 'scim' | 'admin'; token: TokenRecord; tenant: Tenant }
  | { kind: 'session'; tenant: Tenant; userId: string };

declare global {
  namespace Express {
    interface Request {
      /** The request id, echoed as X-Request-Id and present in every log line. */
      id: string;
      log: Logger;
      auth?: Authenticated;
      ctx?: Ctx;
      /** Who acts on the management API, with their permissions as of this request. */
      principal?: Principal;
    }
  }
}

declare module 'express-session' {
  interface SessionData {
    tenantId: string;
    userId: string;
    connectionId: string;
    /** Epoch ms of the sign-in: the absolute timeout counts from it. */
    signedInAt: number;
    /** Session-authenticated writes echo it in X-CSRF-Token. */
    csrfToken: string;
  }
}
