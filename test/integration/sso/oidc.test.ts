import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import request from 'supertest';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import {
  jwt,
  startForgingIdp,
  startOidcProvider,
  throughIdp,
  type TestAccount,
  type TokenRequest,
} from '../../support/oidc.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { pathOf, setCookies } from '../../support/saml.js';

const BASE = 'https://roster.test';

interface OidcConnectionView {
  id: string;
  loginUrl: string;
  redirectUri: string;
}

describe('SSO: OIDC sign-in', () => {
  const app = useApp();
  let t: TestTenant;
  let op: Awaited<ReturnType<typeof startOidcProvider>>;
  let forger: Awaited<ReturnType<typeof startForgingIdp>>;
  let real: OidcConnectionView;
  let forged: OidcConnectionView;
  let n = 0;
  const email = (domain = 'example.com') => `person${++n}-${Date.now()}@${domain}`;

  before(async () => {
    t = await buildTenant();
    forger = await startForgingIdp();
    const create = (body: Record<string, unknown>) =>
      request(app)
        .post('/api/v1/sso-connections')
        .set(t.admin)
        .send({
          protocol: 'oidc',
          clientId: 'roster',
          clientSecret: 'client-s3cret',
          domains: ['example.com'],
          ...body,
        })
        .expect(201);
    // The real provider must know the redirect URI, which names the connection: made first, pointed at it after.
    real = (
      await create({
        name: 'Okta OIDC',
        issuer: 'http://127.0.0.1:9',
        groupsClaim: 'groups',
        scopes: ['openid', 'email', 'profile', 'groups'],
      })
    ).body;
    op = await startOidcProvider({
      clientId: 'roster',
      clientSecret: 'client-s3cret',
      redirectUris: [real.redirectUri],
    });
    await request(app).patch(`/api/v1/sso-connections/${real.id}`).set(t.admin).send({ issuer: op.issuer }).expect(200);
    // Its own domain: two enabled connections never speak for the same one.
    forged = (
      await create({ name: 'Hand-made', issuer: forger.issuer, groupsClaim: 'groups', domains: ['forged.example'] })
    ).body;
  });
  after(async () => {
    await op?.close();
    await forger?.close();
  });

  /** A browser signing in: Roster → IdP (logging in as `account`) → Roster's callback. */
  async function signIn(
    agent: ReturnType<typeof request.agent>,
    conn: OidcConnectionView,
    opts: { account?: TestAccount; edit?: (u: URL) => void; back?: (u: URL) => void } = {},
  ) {
    if (opts.account) op.signInAs(opts.account);
    const login = await agent.get(pathOf(conn.loginUrl)).expect(302);
    const back = await throughIdp(login.headers.location!, BASE, opts.edit);
    opts.back?.(back);
    return agent.get(back.pathname + back.search);
  }

  async function refused(res: request.Response, status: number, reason: string) {
    assert.equal(res.status, status, res.text);
    assert.ok(res.text.includes(`Reason: ${reason}.`), res.text);
    assert.equal(
      setCookies(res).some((c) => c.startsWith('roster_session=')),
      false,
    );
    const failed = await auditEvents(app, t, 'login.failed');
    assert.equal((failed[0]!.after as { reason: string }).reason, reason);
  }

  const idpGroups = async (userId: string) =>
    (
      (await request(app).get(`/api/v1/users/${userId}/idp-groups`).set(t.admin).expect(200)).body.items as {
        displayName: string;
        source: string;
      }[]
    )
      .map((g) => `${g.source}:${g.displayName}`)
      .sort();

  describe('against a real OpenID provider', () => {
    it('runs the code flow with PKCE, state and nonce; groups in the ID token become OIDC-sourced IdP groups', async () => {
      const who = email();
      const user = await buildUser(app, t, { email: who });
      const agent = request.agent(app);
      const login = await agent.get(pathOf(real.loginUrl)).expect(302);
      const auth = new URL(login.headers.location!);
      assert.equal(auth.origin, op.issuer);
      assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
      assert.ok(
        auth.searchParams.get('code_challenge') && auth.searchParams.get('state') && auth.searchParams.get('nonce'),
      );
      assert.equal(auth.searchParams.get('redirect_uri'), real.redirectUri);
      const flowCookie = setCookies(login).find((c) => c.startsWith('roster_oidc='))!;
      assert.match(flowCookie, /HttpOnly/);
      assert.match(flowCookie, /SameSite=Lax/);
      op.signInAs({
        sub: 'okta-1',
        email: who.toUpperCase(),
        email_verified: true,
        name: 'Ada',
        groups: ['Eng', 'Ops'],
      });
      const back = await throughIdp(login.headers.location!, BASE);
      const res = await agent.get(back.pathname + back.search);
      assert.equal(res.status, 303, res.text);
      const me = await agent.get('/api/v1/me').expect(200);
      assert.equal(me.body.user.id, user.id);
      assert.deepEqual(await idpGroups(user.id), ['oidc:Eng', 'oidc:Ops']);
      const ok = await auditEvents(app, t, 'login.succeeded');
      assert.equal((ok[0]!.after as { protocol: string }).protocol, 'oidc');
    });

    it('refuses a tampered state, and the flow is used up', async () => {
      const who = email();
      await buildUser(app, t, { email: who });
      const agent = request.agent(app);
      let callback = '';
      const res = await signIn(agent, real, {
        account: { sub: 's1', email: who },
        back: (u) => {
          callback = u.pathname + u.search;
          u.searchParams.set('state', 'forged-state');
        },
      });
      await refused(res, 401, 'bad_state');
      await refused(await agent.get(callback), 401, 'bad_state');
    });

    it('refuses a callback outside the browser that started the sign-in (login CSRF)', async () => {
      const who = email();
      await buildUser(app, t, { email: who });
      op.signInAs({ sub: 's2', email: who });
      const login = await request.agent(app).get(pathOf(real.loginUrl)).expect(302);
      const back = await throughIdp(login.headers.location!, BASE);
      await refused(await request.agent(app).get(back.pathname + back.search), 401, 'bad_state');
    });

    it('refuses an ID token carrying another nonce', async () => {
      const who = email();
      await buildUser(app, t, { email: who });
      await refused(
        await signIn(request.agent(app), real, {
          account: { sub: 's3', email: who },
          edit: (u) => u.searchParams.set('nonce', 'not-the-one-roster-sent'),
        }),
        401,
        'bad_nonce',
      );
    });

    it('refuses a response from another issuer', async () => {
      const who = email();
      await buildUser(app, t, { email: who });
      await refused(
        await signIn(request.agent(app), real, {
          account: { sub: 's4', email: who },
          back: (u) => u.searchParams.set('iss', 'https://evil.test'),
        }),
        401,
        'wrong_issuer',
      );
    });

    it('shows the IdP refusing (access_denied) as a failed sign-in', async () => {
      const agent = request.agent(app);
      const login = await agent.get(pathOf(real.loginUrl)).expect(302);
      const state = new URL(login.headers.location!).searchParams.get('state')!;
      const res = await agent.get(pathOf(real.redirectUri)).query({ error: 'access_denied', state, iss: op.issuer });
      await refused(res, 401, 'idp_error');
    });

    it('the route, not the query, says whether a sign-in starts or completes', async () => {
      const agent = request.agent(app);
      const login = await agent.get(pathOf(real.loginUrl)).query({ code: 'x', state: 'y' }).expect(302);
      assert.equal(new URL(login.headers.location!).origin, op.issuer);
      // A callback without a code is a refused answer, never a new trip to the IdP.
      const res = await agent.get(pathOf(real.redirectUri));
      assert.equal(res.status, 401, res.text);
      assert.equal(res.headers.location, undefined);
    });

    it('refuses an email the IdP says is unverified', async () => {
      const who = email();
      await buildUser(app, t, { email: who });
      await refused(
        await signIn(request.agent(app), real, { account: { sub: 's5', email: who, email_verified: false } }),
        403,
        'email_not_verified',
      );
    });

    it('counts an email without email_verified only when the connection trusts the IdP to verify (Entra)', async () => {
      const who = email();
      const user = await buildUser(app, t, { email: who });
      await refused(
        await signIn(request.agent(app), real, { account: { sub: `nv-${who}`, email: who } }),
        403,
        'email_not_verified',
      );
      const on = await request(app)
        .patch(`/api/v1/sso-connections/${real.id}`)
        .set(t.admin)
        .send({ trustEmailWithoutVerifiedClaim: true })
        .expect(200);
      assert.equal(on.body.trustEmailWithoutVerifiedClaim, true);
      try {
        await refused(
          await signIn(request.agent(app), real, { account: { sub: `nv-${who}`, email: who, email_verified: false } }),
          403,
          'email_not_verified',
        );
        const agent = request.agent(app);
        assert.equal((await signIn(agent, real, { account: { sub: `nv-${who}`, email: who } })).status, 303);
        assert.equal((await agent.get('/api/v1/me').expect(200)).body.user.id, user.id);
      } finally {
        await request(app)
          .patch(`/api/v1/sso-connections/${real.id}`)
          .set(t.admin)
          .send({ trustEmailWithoutVerifiedClaim: false })
          .expect(200);
      }
    });

    it('never lets an unverified email stand in for the user name (matchBy userName)', async () => {
      const victim = email();
      await buildUser(app, t, { email: victim, role: 'admin' });
      await request(app)
        .patch(`/api/v1/sso-connections/${real.id}`)
        .set(t.admin)
        .send({ matchBy: 'userName' })
        .expect(200);
      try {
        const res = await signIn(request.agent(app), real, {
          account: { sub: 'attacker', email: victim, email_verified: false },
        });
        await refused(res, 403, 'missing_identifier');
      } finally {
        await request(app)
          .patch(`/api/v1/sso-connections/${real.id}`)
          .set(t.admin)
          .send({ matchBy: 'email' })
          .expect(200);
      }
    });

    it('matches by SCIM externalId (the sub) when the connection says so', async () => {
      const who = email();
      const created = await scimClient(app, t.scimToken)
        .post('/Users', oktaUser(who, { externalId: '00u-okta-42' }))
        .expect(201);
      await request(app)
        .patch(`/api/v1/sso-connections/${real.id}`)
        .set(t.admin)
        .send({ matchBy: 'externalId' })
        .expect(200);
      try {
        const agent = request.agent(app);
        assert.equal(
          (await signIn(agent, real, { account: { sub: '00u-okta-42', email: 'someone-else@example.com' } })).status,
          303,
        );
        assert.equal((await agent.get('/api/v1/me').expect(200)).body.user.id, created.body.id);
      } finally {
        await request(app)
          .patch(`/api/v1/sso-connections/${real.id}`)
          .set(t.admin)
          .send({ matchBy: 'email' })
          .expect(200);
      }
    });
  });

  describe('against a hand-made provider issuing forged tokens', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    let who: string;
    let userId: string;
    beforeEach(async () => {
      who = email('forged.example');
      userId = (await buildUser(app, t, { email: who })).id;
      forger.state.userinfo = { sub: `sub-${who}` };
    });
    const issue = (make: (tr: TokenRequest) => string) => {
      forger.state.idToken = (_iss, tr) => make(tr);
    };
    // A new IdP identity per test (sub from the email): the first sign-in binds it to that test's user.
    const good =
      (extra: Record<string, unknown> = {}) =>
      (tr: TokenRequest) =>
        jwt(
          { alg: 'RS256', kid: 'k1' },
          forger.claims(tr, { sub: `sub-${who}`, email: who, email_verified: true, ...extra }),
          forger.key,
        );

    it('accepts a properly signed token, after sending the PKCE verifier and the secret by HTTP Basic', async () => {
      issue(good({ groups: ['Eng'] }));
      assert.equal((await signIn(request.agent(app), forged)).status, 303);
      const tr = forger.state.lastTokenRequest!;
      assert.equal(tr.pkceOk, true);
      assert.equal(tr.auth, 'client_secret_basic');
      assert.equal(tr.secret, 'client-s3cret');
      assert.deepEqual(await idpGroups(userId), ['oidc:Eng']);
    });

    it('two sign-ins through one connection at once each land as their own person', async () => {
      const people = [who, email('forged.example')];
      const ids = [userId, (await buildUser(app, t, { email: people[1] })).id];
      const byNonce = new Map<string, string>();
      issue((tr) => {
        const p = byNonce.get(tr.nonce)!;
        return jwt(
          { alg: 'RS256', kid: 'k1' },
          forger.claims(tr, { sub: `sub-${p}`, email: p, email_verified: true, groups: [] }),
          forger.key,
        );
      });
      const agents = people.map(() => request.agent(app));
      const backs: URL[] = [];
      for (const [i, p] of people.entries()) {
        const login = await agents[i]!.get(pathOf(forged.loginUrl)).expect(302);
        byNonce.set(new URL(login.headers.location!).searchParams.get('nonce')!, p);
        backs.push(await throughIdp(login.headers.location!, BASE));
      }
      const answers = await Promise.all(agents.map((agent, i) => agent.get(backs[i]!.pathname + backs[i]!.search)));
      for (const [i, res] of answers.entries()) {
        assert.equal(res.status, 303, res.text);
        assert.equal((await agents[i]!.get('/api/v1/me').expect(200)).body.user.id, ids[i]);
      }
    });

    it('refuses a bad signature', async () => {
      issue((tr) => jwt({ alg: 'RS256', kid: 'k1' }, forger.claims(tr, { email: who }), other));
      await refused(await signIn(request.agent(app), forged), 401, 'bad_signature');
    });

    it('refuses alg none', async () => {
      issue((tr) => jwt({ alg: 'none' }, forger.claims(tr, { email: who }), null));
      await refused(await signIn(request.agent(app), forged), 401, 'bad_algorithm');
    });

    it('refuses an algorithm the connection did not pin, and accepts it once pinned', async () => {
      issue((tr) =>
        jwt(
          { alg: 'RS384', kid: 'k1' },
          forger.claims(tr, { sub: `sub-${who}`, email: who, email_verified: true }),
          forger.key,
        ),
      );
      await refused(await signIn(request.agent(app), forged), 401, 'bad_algorithm');
      await request(app)
        .patch(`/api/v1/sso-connections/${forged.id}`)
        .set(t.admin)
        .send({ idTokenSigningAlgs: ['RS256', 'RS384'] })
        .expect(200);
      try {
        const r = await signIn(request.agent(app), forged);
        assert.equal(r.status, 303, r.text);
      } finally {
        await request(app)
          .patch(`/api/v1/sso-connections/${forged.id}`)
          .set(t.admin)
          .send({ idTokenSigningAlgs: ['RS256'] })
          .expect(200);
      }
    });

    it('refuses an expired token', async () => {
      const past = Math.floor(Date.now() / 1000) - 3600;
      issue(good({ iat: past - 300, exp: past }));
      await refused(await signIn(request.agent(app), forged), 401, 'expired');
    });

    it('refuses a token for another client or from another issuer', async () => {
      issue(good({ aud: 'someone-else' }));
      await refused(await signIn(request.agent(app), forged), 401, 'wrong_audience');
      issue(good({ iss: 'https://evil.test' }));
      await refused(await signIn(request.agent(app), forged), 401, 'wrong_issuer');
    });

    it("keeps the previous groups on Entra's overage (_claim_names), and an absent groups claim means none", async () => {
      issue(good({ groups: ['Eng'] }));
      await signIn(request.agent(app), forged);
      issue(
        good({
          _claim_names: { groups: 'src1' },
          _claim_sources: { src1: { endpoint: 'https://graph.microsoft.com/v1.0/users/x/getMemberObjects' } },
        }),
      );
      assert.equal((await signIn(request.agent(app), forged)).status, 303);
      assert.deepEqual(await idpGroups(userId), ['oidc:Eng']);
      assert.equal((await auditEvents(app, t, 'sso.groups_overage'))[0]!.entity.id, userId);
      issue(good());
      await signIn(request.agent(app), forged);
      assert.deepEqual(await idpGroups(userId), []);
    });

    it('asks the userinfo endpoint for what the ID token leaves out (a thin token without email)', async () => {
      // Someone not yet bound to this connection: only the email from userinfo can find them.
      const thin = await buildUser(app, t, { email: email('forged.example') });
      issue((tr) => jwt({ alg: 'RS256', kid: 'k1' }, forger.claims(tr, { sub: 'thin-1', groups: [] }), forger.key));
      forger.state.userinfo = { sub: 'thin-1', email: thin.email, email_verified: true };
      const agent = request.agent(app);
      assert.equal((await signIn(agent, forged)).status, 303);
      assert.equal((await agent.get('/api/v1/me').expect(200)).body.user.id, thin.id);
    });

    it("does not take userinfo's email_verified for the ID token's different address", async () => {
      issue((tr) => jwt({ alg: 'RS256', kid: 'k1' }, forger.claims(tr, { sub: `sub-${who}`, email: who }), forger.key));
      forger.state.userinfo = { sub: `sub-${who}`, email: email('forged.example'), email_verified: true };
      await refused(await signIn(request.agent(app), forged), 403, 'email_not_verified');
      // The same address verified by userinfo counts.
      forger.state.userinfo = { sub: `sub-${who}`, email: who, email_verified: true };
      assert.equal((await signIn(request.agent(app), forged)).status, 303);
    });

    it('sends the client secret in the body when the connection says client_secret_post', async () => {
      await request(app)
        .patch(`/api/v1/sso-connections/${forged.id}`)
        .set(t.admin)
        .send({ tokenEndpointAuthMethod: 'client_secret_post' })
        .expect(200);
      try {
        issue(good());
        assert.equal((await signIn(request.agent(app), forged)).status, 303);
        assert.equal(forger.state.lastTokenRequest!.auth, 'client_secret_post');
      } finally {
        await request(app)
          .patch(`/api/v1/sso-connections/${forged.id}`)
          .set(t.admin)
          .send({ tokenEndpointAuthMethod: 'client_secret_basic' })
          .expect(200);
      }
    });
  });
});
