import { Router } from 'express';
import type { AppDeps } from '../app.js';
import { bearerAuth } from '../http/auth.js';
import { parseJsonBody } from '../http/body.js';
import { resource } from '../http/routes.js';
import { presentTenant } from './tenant.js';

export function managementRoutes(deps: AppDeps): Router {
  const r = Router();
  r.use(bearerAuth(deps.db.knex, 'admin'));
  r.use(parseJsonBody({ limitBytes: deps.config.bodyLimitBytes, maxDepth: deps.config.jsonMaxDepth }));
  resource(r, '/tenant', { get: (req, res) => void res.json(presentTenant(req.auth!.tenant)) });
  resource(r, '/areas', { get: (_req, res) => void res.json(deps.catalogue) });
  return r;
}
