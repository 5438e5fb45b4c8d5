import express, { type Express } from 'express';
import type { AppDeps } from './http/deps.js';
import './http/request.js';
import { NotFound } from './errors.js';
import { createMetrics } from './http/metrics.js';
import { problemErrors } from './http/problem.js';
import { accessLog, requestId } from './http/request-id.js';
import { scimErrors } from './http/scim-error.js';
import { systemRoutes } from './http/system.js';
import { invitePages } from './management/invite-pages.js';
import { managementRoutes } from './management/routes.js';
import { scimRoutes } from './scim/routes.js';
import { ssoRoutes } from './sso/routes.js';
import { sessionMiddleware } from './http/session.js';

const notFound = () => {
  throw new NotFound('not_found', 'no such endpoint');
};

/** Builds the express app without listening, so main.ts and supertest share it. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.trustProxy);
  app.set('etag', false);

  app.use(requestId(deps.logger));
  app.use(accessLog());
  const metrics = createMetrics(deps.db.knex, deps.config.metricsToken);
  app.use(metrics.middleware);

  app.use(systemRoutes(deps.db));
  if (deps.config.metricsEnabled) app.get('/metrics', metrics.handler);

  // Each protocol answers its own errors, unknown paths included, in its own shape.
  app.use('/scim/v2', scimRoutes(deps), notFound, scimErrors());
  // Sign-in and the management API share the browser session; SCIM never sees it.
  const sessions = sessionMiddleware(deps);
  app.use('/api/v1', sessions, managementRoutes(deps), notFound, problemErrors());
  app.use('/auth', sessions, ssoRoutes(deps), notFound, problemErrors());
  app.use('/invite', invitePages(deps));
  app.use(notFound, problemErrors());
  return app;
}
