import { Router } from 'express';
import type { Db } from '../db/knex.js';
import { Unavailable } from '../errors.js';
import { translateDbError } from '../db/errors.js';
import { resource } from './routes.js';

/** Liveness, readiness. Readiness asks the database, so a load balancer stops sending traffic. */
export function systemRoutes(db: Db): Router {
  const r = Router();
  resource(r, '/healthz', { get: (_req, res) => void res.json({ status: 'ok' }) });
  resource(r, '/readyz', {
    get: async (_req, res) => {
      try {
        await db.knex.raw('select 1');
      } catch (err) {
        const e = translateDbError(err);
        throw e instanceof Unavailable
          ? e
          : new Unavailable('database_unavailable', 'the database does not answer', { cause: err, retryAfter: 1 });
      }
      res.json({ status: 'ready', database: db.dialect.name });
    },
  });
  return r;
}
