import { Router } from 'express';
import type { AppDeps } from '../http/deps.js';
import { keyOrSessionAuth } from '../http/auth.js';
import { parseJsonBody } from '../http/body.js';
import { Api } from './api.js';
import { registerAuditEvents } from './audit-events.js';
import { authenticatePrincipal } from './principal.js';
import { commonSchemas } from './schemas.js';
import { registerAgentAccess } from './agent-access.js';
import { registerAgents } from './agents.js';
import { registerApiKeys } from './api-keys.js';
import { registerGroups } from './groups.js';
import { registerImports } from './imports.js';
import { registerInvitations } from './invitations.js';
import { registerJobs } from './jobs.js';
import { registerMe } from './me.js';
import { registerMappingRules } from './mapping-rules.js';
import { registerPermissions } from './permissions.js';
import { registerReports } from './reports.js';
import { registerRoleTemplates } from './role-templates.js';
import { registerSsoConnections } from './sso-connections.js';
import { registerTenant } from './tenant.js';
import { registerUsers, userSchema } from './users.js';

/** Everything the management API serves, as one registry (see api.ts). */
export function buildApi(deps: AppDeps): Api {
  const api = new Api({ validateResponses: deps.validateResponses ?? false, catalogue: deps.catalogue });
  const common = commonSchemas(api);
  registerTenant(api, deps, common);
  const user = userSchema(api, common);
  registerUsers(api, deps, user);
  registerPermissions(api, deps);
  registerInvitations(api, deps, user);
  registerRoleTemplates(api, deps, common);
  registerApiKeys(api, deps, common);
  registerGroups(api, deps, common);
  registerAgents(api, deps, common);
  registerAgentAccess(api, deps);
  registerMappingRules(api, deps, common);
  registerReports(api, deps);
  registerJobs(api, deps, common);
  registerImports(api, deps);
  registerAuditEvents(api, deps, common);
  registerSsoConnections(api, deps, common);
  registerMe(api, user);
  return api;
}

export function managementRoutes(deps: AppDeps): Router {
  const api = buildApi(deps);
  const document = api.document({
    title: 'Roster management API',
    version: '1',
    serverUrl: `${deps.config.publicBaseUrl}/api/v1`,
  });
  const r = Router();
  r.get('/openapi.json', (_req, res) => void res.json(document));
  const body = parseJsonBody({
    limitBytes: deps.config.bodyLimitBytes,
    maxDepth: deps.config.jsonMaxDepth,
    timeoutMs: deps.config.requestBodyTimeoutMs,
  });
  // Anonymous callers get their body read on public operations only; everyone else's waits for
  // authentication, which releases its database connection before the body is read.
  const publicRoutes = Router();
  api.mount(publicRoutes, 'public', [body]);
  r.use(publicRoutes);
  r.use(keyOrSessionAuth(deps.db.knex, deps.config.publicBaseUrl));
  r.use(authenticatePrincipal(deps));
  r.use(body);
  api.mount(r, 'authenticated');
  return r;
}
