import { Router } from 'express';
import type { AppDeps } from '../app.js';
import { bearerAuth } from '../http/auth.js';
import { parseJsonBody, requireJsonForWrites } from '../http/body.js';
import { resource } from '../http/routes.js';
import { serviceProviderConfig } from './discovery.js';
import { sendScim } from './send.js';

export function scimRoutes(deps: AppDeps): Router {
  const r = Router();
  r.use(requireJsonForWrites());
  r.use(bearerAuth(deps.db.knex, 'scim'));
  r.use(parseJsonBody({ limitBytes: deps.config.bodyLimitBytes, maxDepth: deps.config.jsonMaxDepth }));
  resource(r, '/ServiceProviderConfig', { get: (_req, res) => sendScim(res, 200, serviceProviderConfig(deps.config)) });
  return r;
}
