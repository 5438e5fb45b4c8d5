import type { Area } from '../access/catalogue.js';
import type { Config } from '../config/load.js';
import type { Db } from '../db/knex.js';
import type { Logger } from '../log.js';
import type { Mailer } from '../mail/mailer.js';

/**
 * What the routers are built from. It lives here, below every router, so that an edge can name
 * it without importing app.ts, the composition root that imports the edges.
 */
export interface AppDeps {
  config: Config;
  /** The area catalogue, validated at start. */
  catalogue: Area[];
  db: Db;
  logger: Logger;
  /** Delivers the mail outbox after commits (invitations). */
  mailer: Mailer;
  /** Tests: every management API response is checked against its OpenAPI schema. */
  validateResponses?: boolean;
}
