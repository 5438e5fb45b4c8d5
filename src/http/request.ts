import type { Logger } from 'pino';
import type { Principal } from '../access/principal.js';
import type { Ctx } from '../context.js';
import type { Tenant, TokenRecord } from '../tenants/store.js';

export interface Authenticated {
  kind: 'scim' | 'admin';
  token: TokenRecord;
  tenant: Tenant;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
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

export {};
