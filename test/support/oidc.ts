import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
  groups?: string[];
}

/** oidc-provider's storage, per provider, so it does not warn about its process-wide default. */
function memoryAdapter() {
  const store = new Map<string, Record<string, unknown>>();
  return class {
    constructor(private readonly model: string) {}
    private key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>) {
      store.set(this.key(id), payload);
    }
    async find(id: string) {
      return store.get(this.key(id));
    }
    async findByUid(uid: string) {
      return [...store.values()].find((p) => p.uid === uid);
    }
    async findByUserCode(userCode: string) {
      return [...store.values()].find((p) => p.userCode === userCode);
    }
    async consume(id: string) {
      const p = store.get(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [k, p] of store) if (p.grantId === grantId) store.delete(k);
    }
  };
}

function listen(handler: http.RequestListener): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * A real OpenID provider (panva's oidc-provider) on 127.0.0.1, with one confidential client.
 * Logging in is automatic: the interaction signs in as `account` (set it before each sign-in),
 * and consent is granted.
 */
export async function startOidcProvider(opts: {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  tokenEndpointAuthMethod?: string;
}) {
  let account: TestAccount = { sub: 'nobody' };
  let provider!: Provider;
  const { server, origin } = await listen(async (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: account.sub } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    provider.callback()(req, res);
  });
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  provider = new Provider(origin, {
    clients: [
      {
        client_id: opts.clientId,
        client_secret: opts.clientSecret,
        redirect_uris: opts.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: opts.tokenEndpointAuthMethod ?? 'client_secret_basic',
      },
    ],
    adapter: memoryAdapter(),
    ttl: { Interaction: 600, Grant: 600, Session: 600, AccessToken: 300, IdToken: 300, AuthorizationCode: 60 },
    jwks: { keys: [{ ...jwk, kid: 'test-key', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // Claims of the granted scopes go in the ID token too, as Okta and Entra put them there.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => (id === account.sub ? account : { sub: id }) }) as never,
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client!.clientId,
        accountId: ctx.oidc.session!.accountId!,
      });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups']);
      await grant.save();
      return grant;
    },
  });
  return {
    issuer: origin,
    provider,
    signInAs(a: TestAccount) {
      account = a;
    },
    close: () => close(server),
  };
}

/**
 * A browser between Roster and the IdP: follows the IdP's redirects with its own cookie jar
 * until the IdP sends it back to Roster, and answers that URL. `edit` may alter the first
 * request to the IdP (a test changing the nonce Roster asked for).
 */
export async function throughIdp(authorizationUrl: string, rosterBase: string, edit?: (u: URL) => void): Promise<URL> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  edit?.(url);
  for (let i = 0; i < 10; i++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`the IdP stopped at ${url.href} with ${res.status}: ${await res.text()}`);
    url = new URL(location, url);
    if (url.href.startsWith(rosterBase)) return url;
  }
  throw new Error('too many redirects at the IdP');
}

const b64u = (v: Buffer | string) => Buffer.from(v).toString('base64url');

/** A hand-signed JWT: what a real provider would never issue (bad signatures, alg none, expired…). */
export function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | null): string {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  if (!key) return `${input}.`;
  const hash = header.alg === 'RS384' ? 'sha384' : header.alg === 'RS512' ? 'sha512' : 'sha256';
  return `${input}.${b64u(sign(hash, Buffer.from(input), key))}`;
}

export interface TokenRequest {
  nonce: string;
  clientId: string;
  /** How the client authenticated at the token endpoint. */
  auth: 'client_secret_basic' | 'client_secret_post' | 'none';
  secret: string | undefined;
  pkceOk: boolean;
}

/**
 * A small hand-made OpenID provider on 127.0.0.1: discovery, JWKS, an authorization endpoint
 * that answers at once, and a token endpoint whose ID token the test writes (`idToken`), signed
 * with the provider's key (`key`) or anything else.
 */
export async function startForgingIdp() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const codes = new Map<string, { nonce: string; challenge: string; clientId: string }>();
  const state: {
    idToken: (issuer: string, req: TokenRequest) => string;
    userinfo: Record<string, unknown> | null;
    lastTokenRequest: TokenRequest | null;
  } = { idToken: () => '', userinfo: null, lastTokenRequest: null };
  let issuer = '';
  const { server, origin } = await listen((req, res) => {
    const url = new URL(req.url!, issuer);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        userinfo_endpoint: `${issuer}/userinfo`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'RS384', 'none'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      });
    }
    if (url.pathname === '/jwks')
      return json(200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' }] });
    if (url.pathname === '/authorize') {
      const code = randomBytes(16).toString('hex');
      codes.set(code, {
        nonce: url.searchParams.get('nonce')!,
        challenge: url.searchParams.get('code_challenge')!,
        clientId: url.searchParams.get('client_id')!,
      });
      const back = new URL(url.searchParams.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state')!);
      res.writeHead(302, { location: back.href }).end();
      return;
    }
    if (url.pathname === '/userinfo') return json(200, state.userinfo ?? { sub: 'forged-sub' });
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const issued = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        if (!issued) return json(400, { error: 'invalid_grant' });
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const [id, secret] = basic
          ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent)
          : [form.get('client_id') ?? '', form.get('client_secret') ?? undefined];
        const verifier = form.get('code_verifier') ?? '';
        const tr: TokenRequest = {
          nonce: issued.nonce,
          clientId: id!,
          auth: basic ? 'client_secret_basic' : form.get('client_secret') ? 'client_secret_post' : 'none',
          secret,
          pkceOk: createHash('sha256').update(verifier).digest('base64url') === issued.challenge,
        };
        state.lastTokenRequest = tr;
        json(200, {
          access_token: randomBytes(16).toString('hex'),
          token_type: 'Bearer',
          expires_in: 300,
          id_token: state.idToken(issuer, tr),
        });
      });
      return;
    }
    json(404, { error: 'not_found' });
  });
  issuer = origin;
  return {
    issuer,
    key: privateKey,
    state,
    /** The claims of a valid ID token for this request. */
    claims(tr: TokenRequest, extra: Record<string, unknown> = {}) {
      const now = Math.floor(Date.now() / 1000);
      return { iss: issuer, aud: tr.clientId, sub: 'forged-sub', nonce: tr.nonce, iat: now, exp: now + 300, ...extra };
    },
    close: () => close(server),
  };
}
