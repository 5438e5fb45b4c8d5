import { Router, type Request, type Response } from 'express';
import type { AppDeps } from '../http/deps.js';
import type { Ctx } from '../context.js';
import { NotFound, Unauthenticated } from '../errors.js';
import { checkCsrf } from '../http/auth.js';
import { formBody } from '../http/body.js';
import { addressRateLimit } from '../http/rate-limit.js';
import {
  recordLoginFailure,
  SignInRefused,
  signInFromClaims,
  type ClaimGroups,
  type SignInConnection,
  type SignInIdentity,
} from '../provisioning/sign-in.js';
import { getTenantBySlug, type Tenant } from '../tenants/store.js';
import {
  getConnection,
  type Connection,
  type OidcConnection,
  type SamlConnection,
} from '../connections/connections.js';
import { LoginFailure } from './failure.js';
import { handleOidcCallback, startOidcSignIn, type OidcSite } from './oidc/flow.js';
import { page } from './pages.js';
import { handleSamlResponse, startSamlSignIn, type SamlSite } from './saml/flow.js';
import { oidcRedirectUri, samlUrls } from '../connections/urls.js';
import { loadSpCredentials, spMetadata, type SpCredentials } from './saml/sp.js';
import { endSession, startSession } from '../http/session.js';

/** Building the routes reads the SP key pair; the process start names this failure plainly. */
export { SpCredentialsError } from './saml/sp.js';

/** Where a person lands after signing in when the sign-in named no page. */
const DEFAULT_RETURN_TO = '/api/v1/me';
const FLOW_COOKIE = 'roster_oidc';
const SAML_COOKIE = 'roster_saml';

/** Only a path on this site: an open redirect would make Roster a phishing helper. */
function safeReturnTo(v: unknown): string | null {
  if (
    typeof v !== 'string' ||
    v.length > 1000 ||
    !v.startsWith('/') ||
    v.startsWith('//') ||
    /[\\\x00-\x1f\x7f]/.test(v)
  )
    return null;
  return v;
}

function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

interface Target {
  tenant: Tenant;
  connection: Connection;
}

const NOT_FOUND_PAGE = ['Check the sign-in link with your administrator.'];

/** The tenant and connection a sign-in URL names, or a page saying there is none. */
async function target(
  deps: AppDeps,
  req: Request,
  res: Response,
  protocol?: Connection['protocol'],
): Promise<Target | undefined> {
  let tenant: Tenant;
  try {
    tenant = await getTenantBySlug(deps.db.knex, String(req.params.tenant));
  } catch (err) {
    if (!(err instanceof NotFound)) throw err;
    page(res, 404, 'Unknown organisation', NOT_FOUND_PAGE);
    return undefined;
  }
  const connection = await getConnection(deps.db.knex, tenant.id, String(req.params.connection));
  if (!connection || (protocol && connection.protocol !== protocol)) {
    page(res, 404, 'Unknown sign-in connection', NOT_FOUND_PAGE);
    return undefined;
  }
  return { tenant, connection };
}

function ssoCtx(req: Request, t: Target): Ctx {
  return {
    tenantId: t.tenant.id,
    actor: { type: 'system', id: null, display: `SSO connection ${t.connection.name}` },
    requestId: req.id,
    now: new Date(),
  };
}

function signInConnection(c: Connection): SignInConnection {
  return { id: c.id, name: c.name, protocol: c.protocol, matchBy: c.matchBy, domains: c.domains };
}

/** A refused or failed sign-in: recorded as login.failed (never with assertions or tokens), shown as a page. */
async function refuse(
  deps: AppDeps,
  req: Request,
  res: Response,
  t: Target,
  err: unknown,
  subject: string | null,
): Promise<void> {
  if (!(err instanceof LoginFailure) && !(err instanceof SignInRefused)) throw err;
  const user = err instanceof SignInRefused ? err.user : null;
  await recordLoginFailure(
    deps.db,
    ssoCtx(req, t),
    signInConnection(t.connection),
    err.code,
    user,
    err instanceof LoginFailure ? (err.subject ?? subject) : subject,
  );
  req.log.info({ reason: err.code, connectionId: t.connection.id, tenant: t.tenant.slug }, 'sign-in refused');
  page(res, err.status, err instanceof SignInRefused ? 'You cannot sign in' : 'Sign-in failed', [
    err.message,
    `Reason: ${err.code}.`,
  ]);
}

/** A verified identity becomes a signed-in user with a new session, or a refusal page. */
async function complete(
  deps: AppDeps,
  req: Request,
  res: Response,
  t: Target,
  outcome: { identity: SignInIdentity; groups: ClaimGroups; returnTo: string | null },
) {
  const subject = outcome.identity.email ?? outcome.identity.userName;
  try {
    const result = await signInFromClaims(
      deps.db,
      ssoCtx(req, t),
      signInConnection(t.connection),
      outcome.identity,
      outcome.groups,
    );
    await startSession(req, { tenantId: t.tenant.id, userId: result.user.id, connectionId: t.connection.id });
    res.redirect(303, safeReturnTo(outcome.returnTo) ?? DEFAULT_RETURN_TO);
  } catch (err) {
    await refuse(deps, req, res, t, err, subject);
  }
}

function disabled(t: Target): LoginFailure | undefined {
  return t.connection.enabled
    ? undefined
    : new LoginFailure(
        'connection_disabled',
        `sign-in through ${t.connection.name} is turned off; ask an administrator`,
      );
}

/**
 * /auth: starting a sign-in at a tenant's connection, the SAML ACS and metadata, the OIDC
 * callback, the CSRF token of a session, and logout. Rate-limited per client address.
 */
export function ssoRoutes(deps: AppDeps): Router {
  const { config, db } = deps;
  const sp: SpCredentials | undefined =
    config.samlSpKeyFile && config.samlSpCertFile
      ? loadSpCredentials(config.samlSpKeyFile, config.samlSpCertFile)
      : undefined;
  const publicOrigin = new URL(config.publicBaseUrl).origin;
  const samlSite = (t: Target): SamlSite => ({
    db: db.knex,
    tenantId: t.tenant.id,
    connection: t.connection as SamlConnection,
    urls: samlUrls(config.publicBaseUrl, t.tenant.slug, t.connection.id),
    sp,
  });
  const oidcSite = (t: Target): OidcSite => ({
    db: db.knex,
    tenantId: t.tenant.id,
    connection: t.connection as OidcConnection,
    redirectUri: oidcRedirectUri(config.publicBaseUrl, t.tenant.slug, t.connection.id),
  });
  const flowCookie = (t: Target) => ({
    httpOnly: true,
    sameSite: 'lax' as const,
    path: `/auth/${t.tenant.slug}/oidc/${t.connection.id}/callback`,
  });
  const samlCookie = (t: Target) => ({
    httpOnly: true,
    secure: true,
    sameSite: 'none' as const,
    path: `/auth/${t.tenant.slug}/saml/${t.connection.id}/acs`,
  });

  const r = Router();
  r.use(addressRateLimit(config.authRateLimit));

  r.get('/csrf', (req, res) => {
    if (!req.session?.userId || !req.session.csrfToken)
      throw new Unauthenticated('no_session', 'not signed in: sign in through your organisation first');
    res.set('Cache-Control', 'no-store').json({ token: req.session.csrfToken });
  });

  r.post('/logout', async (req, res) => {
    if (req.session?.userId && req.session.csrfToken) checkCsrf(req, publicOrigin, req.session.csrfToken);
    await endSession(req, res);
    res.status(204).end();
  });

  r.get('/:tenant/:connection/login', async (req, res) => {
    const t = await target(deps, req, res);
    if (!t) return;
    try {
      const off = disabled(t);
      if (off) throw off;
      const returnTo = safeReturnTo(req.query.returnTo);
      if (t.connection.protocol === 'saml') {
        const started = await startSamlSignIn(samlSite(t), returnTo, req, res);
        // The IdP posts back cross-site, so only SameSite=None reaches the ACS, and it needs TLS.
        if (req.secure) res.cookie(SAML_COOKIE, started.requestId, { ...samlCookie(t), maxAge: 10 * 60_000 });
        return started.send();
      }
      const started = await startOidcSignIn(oidcSite(t), returnTo, req, res);
      res.cookie(FLOW_COOKIE, started.flowId, { ...flowCookie(t), secure: req.secure, maxAge: 10 * 60_000 });
      started.send();
    } catch (err) {
      await refuse(deps, req, res, t, err, null);
    }
  });

  r.get('/:tenant/saml/:connection/metadata', async (req, res) => {
    const t = await target(deps, req, res, 'saml');
    if (!t) return;
    const site = samlSite(t);
    res
      .type('application/samlmetadata+xml')
      .set('Cache-Control', 'no-cache')
      .send(spMetadata(site.connection, site.urls, sp));
  });

  r.post(
    '/:tenant/saml/:connection/acs',
    formBody({ limitBytes: config.bodyLimitBytes, timeoutMs: config.requestBodyTimeoutMs }),
    async (req, res) => {
      const t = await target(deps, req, res, 'saml');
      if (!t) return;
      try {
        const off = disabled(t);
        if (off) throw off;
        const body = (req.body ?? {}) as Record<string, unknown>;
        if (typeof body.SAMLResponse !== 'string' || !body.SAMLResponse)
          throw new LoginFailure('invalid_response', 'the request carries no SAMLResponse');
        const requestId = cookieValue(req, SAML_COOKIE);
        if (requestId) res.clearCookie(SAML_COOKIE, samlCookie(t));
        const outcome = await handleSamlResponse(
          samlSite(t),
          body.SAMLResponse,
          safeReturnTo(body.RelayState),
          { bound: req.secure, requestId },
          req,
          res,
        );
        await complete(deps, req, res, t, outcome);
      } catch (err) {
        await refuse(deps, req, res, t, err, null);
      }
    },
  );

  r.get('/:tenant/oidc/:connection/callback', async (req, res) => {
    const t = await target(deps, req, res, 'oidc');
    if (!t) return;
    const flowId = cookieValue(req, FLOW_COOKIE);
    res.clearCookie(FLOW_COOKIE, flowCookie(t));
    try {
      const off = disabled(t);
      if (off) throw off;
      const outcome = await handleOidcCallback(oidcSite(t), flowId, req, res);
      await complete(deps, req, res, t, outcome);
    } catch (err) {
      await refuse(deps, req, res, t, err, null);
    }
  });

  return r;
}
