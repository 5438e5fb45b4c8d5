import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Knex } from 'knex';
import * as client from 'openid-client';
import { Strategy, type AuthenticateOptions, type VerifyFunctionWithRequest } from 'openid-client/passport';
import type { ClaimGroups, SignInIdentity } from '../../provisioning/sign-in.js';
import { isLoopbackUrl, type OidcConnection } from '../../connections/connections.js';
import { LoginFailure } from '../failure.js';
import { authenticate, holdRedirect } from '../passport.js';
import { saveOidcFlow, sweepExpired, takeOidcFlow } from '../pending.js';
import { LRUCache } from 'lru-cache';

/** Everything an OIDC step needs about where it runs. */
export interface OidcSite {
  db: Knex;
  tenantId: string;
  connection: OidcConnection;
  redirectUri: string;
}

export interface OidcSignIn {
  identity: SignInIdentity;
  groups: ClaimGroups;
  returnTo: string | null;
}

/** Where the strategy keeps a sign-in's state, PKCE verifier and nonce in the request's `session`. */
const FLOW_KEY = 'flow';

interface FlowState {
  code_verifier: string;
  state?: string;
  nonce?: string;
}

interface OidcStepOptions extends AuthenticateOptions {
  step: 'start' | 'callback';
}

/**
 * The request as openid-client's strategy sees it. Its `session` holds only this sign-in's flow,
 * never the browser session: the flow lives in the database, used up once by the browser that
 * holds its cookie, and Roster's session starts only after sign-in.
 */
type StepRequest = Request & { session: Record<string, FlowState | undefined>; oidcSite: OidcSite };

function stepRequest(req: Request, site: OidcSite, flow: FlowState | undefined): StepRequest {
  return Object.create(req, {
    session: { value: flow ? { [FLOW_KEY]: flow } : {} },
    oidcSite: { value: site },
  }) as StepRequest;
}

/** openid-client's passport strategy for one connection version. */
class ConnectionStrategy extends Strategy {
  /** The route names the step: a callback without a code is refused, never turned into a new sign-in. */
  override shouldInitiateAuthRequest(_req: Request, _currentUrl: URL, options: AuthenticateOptions): boolean {
    return (options as OidcStepOptions).step === 'start';
  }

  /** Only the query is read from the callback; the rest is the configured redirect URI, never the Host header. */
  override currentUrl(req: Request): URL {
    return new URL(req.originalUrl, 'http://callback.invalid');
  }

  /** The strategy sends no state or nonce when the IdP supports PKCE; Roster checks all three. */
  override authorizationRequestParams(req: Request, options: AuthenticateOptions): URLSearchParams {
    const params = new URLSearchParams(super.authorizationRequestParams(req, options));
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }

  override authenticate(...args: Parameters<Strategy['authenticate']>): void {
    holdRedirect(this, args[1]);
    super.authenticate(...args);
  }
}

/**
 * A strategy per connection version, holding its discovery document and JWKS, for an hour: a
 * sign-in should not cost two extra round trips to the IdP, and a changed connection (new
 * version) is rediscovered. Bounded by bytes, estimated from the documents' JSON: an IdP may
 * serve documents of any size.
 */
interface CachedStrategy {
  config: client.Configuration;
  strategy: ConnectionStrategy;
}

const strategies = new LRUCache<string, CachedStrategy>({
  maxSize: 4 * 1024 * 1024,
  maxEntrySize: 512 * 1024,
  sizeCalculation: ({ config }, key) =>
    2 *
      (key.length +
        JSON.stringify(config.serverMetadata()).length +
        JSON.stringify(client.getJwksCache(config) ?? null).length) +
    128,
  ttl: 60 * 60_000,
});

/**
 * A cached strategy, measured again as it is read: its JWKS is fetched after it was stored, so
 * it grows; one grown past the entry bound is answered this once and no longer kept.
 */
function cachedStrategy(key: string): CachedStrategy | undefined {
  const hit = strategies.get(key);
  if (hit) strategies.set(key, hit, { noUpdateTTL: true });
  return hit;
}

async function strategyFor(site: OidcSite): Promise<ConnectionStrategy> {
  const c = site.connection;
  const key = `${c.tenantId}/${c.id}/${c.version}`;
  const hit = cachedStrategy(key);
  if (hit) return hit.strategy;
  const algs = c.oidc.idTokenSigningAlgs;
  const auth =
    c.oidc.tokenEndpointAuthMethod === 'client_secret_post'
      ? client.ClientSecretPost(c.clientSecret)
      : client.ClientSecretBasic(c.clientSecret);
  let config: client.Configuration;
  try {
    config = await client.discovery(
      new URL(c.oidc.issuer),
      c.oidc.clientId,
      // The pinned algorithms: openid-client would otherwise take whatever the IdP advertises.
      { id_token_signed_response_alg: (algs.length === 1 ? algs[0] : algs) as string },
      auth,
      {
        // Non-repudiation: the ID token's signature is verified against the IdP's JWKS even
        // though it came straight from the token endpoint.
        execute: [
          client.enableNonRepudiationChecks,
          ...(isLoopbackUrl(c.oidc.issuer) ? [client.allowInsecureRequests] : []),
        ],
        timeout: 10,
      },
    );
  } catch (err) {
    throw classify(err, "the identity provider's discovery document could not be read");
  }
  const strategy = new ConnectionStrategy(
    { config, name: `oidc ${key}`, sessionKey: FLOW_KEY, passReqToCallback: true },
    verifier(config),
  );
  strategies.set(key, { config, strategy });
  return strategy;
}

/** Errors and their causes, outermost first. */
function chain(err: unknown): { message: string; code?: string; claim?: string }[] {
  const out: { message: string; code?: string; claim?: string }[] = [];
  let e: unknown = err;
  for (let i = 0; e && i < 5; i++) {
    const x = e as { message?: unknown; code?: unknown; claim?: unknown; cause?: unknown };
    out.push({
      message: String(x.message ?? ''),
      code: typeof x.code === 'string' ? x.code : undefined,
      claim: typeof x.claim === 'string' ? x.claim : undefined,
    });
    e = x.cause;
  }
  return out;
}

/** Names the reason of an openid-client failure for the audit log, from its codes and causes. */
function classify(err: unknown, fallback: string): LoginFailure {
  if (err instanceof LoginFailure) return err;
  if (err instanceof client.AuthorizationResponseError)
    return new LoginFailure('idp_error', `the identity provider answered with an error: ${err.error}`);
  if (err instanceof client.ResponseBodyError)
    return new LoginFailure('token_error', `the token endpoint refused the code: ${err.error}`);
  const links = chain(err);
  const text = links.map((l) => l.message).join(' | ');
  const claim = links.find((l) => l.claim)?.claim;
  const codes = new Set(links.map((l) => l.code));
  if (claim === 'nonce') return new LoginFailure('bad_nonce', 'the ID token answers another sign-in (nonce mismatch)');
  if (claim === 'iss' || /"iss"|issuer/i.test(text))
    return new LoginFailure('wrong_issuer', 'the response comes from another issuer than this connection names');
  if (claim === 'aud' || claim === 'azp')
    return new LoginFailure('wrong_audience', 'the ID token is meant for another client');
  if (/"state"/.test(text))
    return new LoginFailure('bad_state', 'the response answers another sign-in (state mismatch)');
  if (codes.has('OAUTH_JWT_TIMESTAMP_CHECK_FAILED'))
    return new LoginFailure('expired', 'the ID token is expired or not yet valid');
  if (/"alg"|algorithm/i.test(text))
    return new LoginFailure(
      'bad_algorithm',
      'the ID token is signed with an algorithm this connection does not accept',
    );
  if (/signature|key/i.test(text))
    return new LoginFailure(
      'bad_signature',
      "the ID token signature does not verify against the identity provider's keys",
    );
  if (err instanceof TypeError && /fetch failed/i.test(text))
    return new LoginFailure('idp_unreachable', 'the identity provider could not be reached');
  return new LoginFailure('invalid_response', fallback);
}

/**
 * Starts a sign-in: code flow with PKCE (S256), state and nonce, kept in the database for the
 * answer. `send` sends the strategy's redirect to the IdP, once the caller has set the flow's cookie.
 */
export async function startOidcSignIn(
  site: OidcSite,
  returnTo: string | null,
  req: Request,
  res: Response,
): Promise<{ flowId: string; send: () => void }> {
  await sweepExpired(site.db, site.tenantId, Date.now());
  const strategy = await strategyFor(site);
  const view = stepRequest(req, site, undefined);
  const options: OidcStepOptions = { step: 'start', callbackURL: site.redirectUri, scope: site.connection.oidc.scopes };
  const step = await authenticate(strategy, view, res, options);
  const flow = view.session[FLOW_KEY];
  if (step.kind !== 'redirect' || !flow?.state || !flow.nonce)
    throw new Error('the OIDC strategy did not redirect to the IdP');
  const flowId = randomBytes(32).toString('base64url');
  await saveOidcFlow(site.db, { tenantId: site.tenantId, connectionId: site.connection.id }, flowId, {
    state: flow.state,
    nonce: flow.nonce,
    codeVerifier: flow.code_verifier,
    returnTo,
  });
  return { flowId, send: step.send };
}

type Claims = Record<string, unknown>;

/** Entra's overage: the groups claim is replaced by a pointer to Graph (`_claim_names`), or `hasgroups`. */
function isOverage(claims: Claims, name: string): boolean {
  const names = claims._claim_names as Record<string, unknown> | undefined;
  return (names !== undefined && typeof names === 'object' && name in names) || claims.hasgroups === true;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() ? v.trim() : null);

function groupsOf(c: OidcConnection, claims: Claims): ClaimGroups {
  const name = c.oidc.groupsClaim;
  if (!name) return { kind: 'unmanaged' };
  if (isOverage(claims, name)) return { kind: 'overage' };
  const v = claims[name];
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return { kind: 'listed', names: list.filter((x): x is string => typeof x === 'string') };
}

/**
 * An address counts only when the provider says it verified it; some (Entra ID) send no
 * email_verified at all, which the connection may accept. An explicit false never counts.
 */
function emailVerified(c: OidcConnection, claims: Claims): boolean {
  const v = claims.email_verified;
  if (v === true || v === 'true') return true;
  return v === undefined && c.oidc.trustEmailWithoutVerifiedClaim;
}

function identityOf(c: OidcConnection, claims: Claims): SignInIdentity {
  const email = str(claims.email);
  const verified = emailVerified(c, claims);
  return {
    subject: str(claims.sub),
    email,
    emailVerified: verified,
    // An address the provider has not verified may be anyone's: it never stands in for a user name.
    userName: str(claims.preferred_username) ?? (verified ? email : null),
    // Entra's object id is what its SCIM provisioning can send as externalId; elsewhere, sub.
    externalId: str(claims.oid) ?? str(claims.sub),
    displayName: str(claims.name),
  };
}

/**
 * The strategy's verify callback: the ID token's claims, and from the userinfo endpoint only what
 * the ID token leaves out and the connection needs.
 */
function verifier(config: client.Configuration): VerifyFunctionWithRequest {
  return (req, tokens, done) => {
    const site = (req as StepRequest).oidcSite;
    userClaims(config, site.connection, tokens).then(
      (claims) =>
        done(null, { identity: identityOf(site.connection, claims), groups: groupsOf(site.connection, claims) }),
      (err: unknown) => done(err),
    );
  };
}

async function userClaims(
  config: client.Configuration,
  c: OidcConnection,
  tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
): Promise<Claims> {
  let claims = { ...(tokens.claims() as Claims) };
  const missing =
    (c.matchBy === 'email' &&
      (!str(claims.email) || (claims.email_verified === undefined && !c.oidc.trustEmailWithoutVerifiedClaim))) ||
    (c.oidc.groupsClaim !== null && claims[c.oidc.groupsClaim] === undefined && !isOverage(claims, c.oidc.groupsClaim));
  if (missing && config.serverMetadata().userinfo_endpoint) {
    const info = { ...(await client.fetchUserInfo(config, tokens.access_token, String(claims.sub))) } as Claims;
    // email_verified speaks of one address: userinfo's counts only for the email it comes
    // with, never to vouch for a different address in the ID token.
    if (str(claims.email) && str(info.email) !== str(claims.email)) delete info.email_verified;
    claims = { ...info, ...claims };
  }
  return claims;
}

/**
 * Completes the code flow at the callback: the browser's pending flow is used up, and the
 * strategy exchanges the code with the PKCE verifier; openid-client checks the ID token's
 * signature (pinned algorithms), issuer, audience, expiry, state and nonce.
 */
export async function handleOidcCallback(
  site: OidcSite,
  flowId: string | undefined,
  req: Request,
  res: Response,
): Promise<OidcSignIn> {
  const scope = { tenantId: site.tenantId, connectionId: site.connection.id };
  const flow = flowId ? await takeOidcFlow(site.db, scope, flowId) : undefined;
  if (!flow)
    throw new LoginFailure(
      'bad_state',
      'this sign-in was not started in this browser, has expired, or was already used; start again',
    );
  const strategy = await strategyFor(site);
  const options: OidcStepOptions = { step: 'callback', callbackURL: site.redirectUri };
  let step;
  try {
    step = await authenticate(
      strategy,
      stepRequest(req, site, { code_verifier: flow.codeVerifier, state: flow.state, nonce: flow.nonce }),
      res,
      options,
    );
  } catch (err) {
    throw classify(err, "the identity provider's answer could not be processed");
  }
  if (step.kind === 'fail') {
    // The strategy fails (rather than errs) when the IdP refused the sign-in (access_denied), or had no flow.
    const error = (step.info as { error?: unknown } | undefined)?.error;
    if (typeof error !== 'string')
      throw new LoginFailure('bad_state', 'this sign-in was not started in this browser; start again');
    throw new LoginFailure('idp_error', `the identity provider answered with an error: ${error}`);
  }
  if (step.kind !== 'success') throw new Error('the OIDC strategy redirected at a callback');
  return { ...(step.user as Omit<OidcSignIn, 'returnTo'>), returnTo: flow.returnTo };
}
