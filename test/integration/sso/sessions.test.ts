import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser, type TestUser } from '../../support/management.js';
import { patchBody, scimClient } from '../../support/scim.js';
import { pathOf, samlSignIn, TestSamlIdp, type SamlConnectionView, setCookies } from '../../support/saml.js';

type Agent = ReturnType<typeof request.agent>;

describe('SSO: sessions', () => {
  const app = useApp();
  const t = useTenant();
  let conn: SamlConnectionView & { id: string };
  const idp = new TestSamlIdp();

  beforeEach(async () => {
    conn = (
      await request(app)
        .post('/api/v1/sso-connections')
        .set(t.admin)
        .send({ protocol: 'saml', name: 'Okta', idpMetadataXml: idp.metadata() })
        .expect(201)
    ).body;
  });

  /** A browser signed in as `email` through the tenant's SAML connection. */
  async function session(email: string, on: Express = app, c = conn): Promise<Agent> {
    const agent = request.agent(on);
    const res = await samlSignIn(agent, c, (id) =>
      idp.response({ audience: c.entityId, recipient: c.acsUrl, nameId: email, inResponseTo: id }),
    );
    assert.equal(res.status, 303, res.text);
    return agent;
  }
  const csrf = async (agent: Agent) => (await agent.get('/auth/csrf').expect(200)).body.token as string;
  const sessionsOf = async (userId: string) =>
    Number(
      (await (
        await testDb()
      )
        .knex('sessions')
        .where({ tenant_id: t.tenant.id, user_id: userId })
        .count({ n: '*' })
        .first())!.n,
    );

  it("gives a member exactly the member's own reach: their account, not the user list or keys", async () => {
    const member = await buildUser(app, t, { email: 'member@example.com' });
    const agent = await session('member@example.com');
    await agent.get(`/api/v1/users/${member.id}`).expect(200);
    const denied = await agent.get('/api/v1/users').expect(403);
    assert.equal(denied.body.code, 'not_allowed');
    await agent.get('/api/v1/api-keys').expect(403);
    await agent.get('/api/v1/sso-connections').expect(403);

    await buildUser(app, t, { email: 'boss@example.com', role: 'admin' });
    const admin = await session('boss@example.com');
    const list = await admin.get('/api/v1/users').expect(200);
    assert.equal(list.body.items.length, 2);
  });

  it('session writes need the token from GET /auth/csrf and refuse cross-site origins; API keys need neither', async () => {
    const target = await buildUser(app, t, { email: 'target@example.com' });
    await buildUser(app, t, { email: 'boss@example.com', role: 'admin' });
    const agent = await session('boss@example.com');
    const token = await csrf(agent);
    const change = () => agent.patch(`/api/v1/users/${target.id}`).send({ crmAccess: true });
    assert.equal((await change().expect(403)).body.code, 'csrf_token_missing');
    assert.equal((await change().set('X-CSRF-Token', 'nope').expect(403)).body.code, 'csrf_token_invalid');
    assert.equal(
      (await change().set('X-CSRF-Token', token).set('Origin', 'https://evil.test').expect(403)).body.code,
      'cross_site_request',
    );
    assert.equal(
      (await change().set('X-CSRF-Token', token).set('Sec-Fetch-Site', 'cross-site').expect(403)).body.code,
      'cross_site_request',
    );
    await change().set('X-CSRF-Token', token).set('Origin', 'https://roster.test').expect(200);
    await agent.get(`/api/v1/users/${target.id}`).expect(200);
    await agent.patch(`/api/v1/users/${target.id}`).set(t.admin).send({ crmAccess: false }).expect(200);
    await request(app).get('/auth/csrf').expect(401);
  });

  it('logout ends the session, with the CSRF token', async () => {
    const u = await buildUser(app, t, { email: 'ada@example.com' });
    const agent = await session('ada@example.com');
    assert.equal(await sessionsOf(u.id), 1);
    await agent.post('/auth/logout').expect(403);
    const out = await agent
      .post('/auth/logout')
      .set('X-CSRF-Token', await csrf(agent))
      .expect(204);
    assert.ok(setCookies(out).some((c) => /^roster_session=;/.test(c)));
    await agent.get('/api/v1/me').expect(401);
    assert.equal(await sessionsOf(u.id), 0);
    await request(app).post('/auth/logout').expect(204);
  });

  it('re-reads the user on every request: a permission change shows at once, a suspension or deletion ends the session for good', async () => {
    const u = await buildUser(app, t, { email: 'ada@example.com' });
    const agent = await session('ada@example.com');
    assert.equal((await agent.get('/api/v1/me').expect(200)).body.permissions.effective.knowledge.level, 'none');
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { knowledge: 'read' } })
      .expect(200);
    assert.equal((await agent.get('/api/v1/me').expect(200)).body.permissions.effective.knowledge.level, 'read');
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    assert.equal((await agent.get('/api/v1/me').expect(401)).body.code, 'session_ended');
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'active' }).expect(200);
    await agent.get('/api/v1/me').expect(401);
    assert.equal(await sessionsOf(u.id), 0);
    const again = await session('ada@example.com');
    await request(app).delete(`/api/v1/users/${u.id}`).set(t.admin).expect(204);
    assert.equal(await sessionsOf(u.id), 0);
    await again.get('/api/v1/me').expect(401);
  });

  it("SCIM deactivation and deletion end the user's sessions with the change", async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    const bob = await buildUser(app, t, { email: 'bob@example.com' });
    const adaBrowser = await session('ada@example.com');
    const adaPhone = await session('ada@example.com');
    const bobBrowser = await session('bob@example.com');
    assert.equal(await sessionsOf(ada.id), 2);
    await scimClient(app, t.scimToken)
      .patch(`/Users/${ada.id}`, patchBody({ op: 'replace', value: { active: false } }))
      .expect(200);
    assert.equal(await sessionsOf(ada.id), 0);
    await adaBrowser.get('/api/v1/me').expect(401);
    await adaPhone.get('/api/v1/me').expect(401);
    await bobBrowser.get('/api/v1/me').expect(200);
    await scimClient(app, t.scimToken).delete(`/Users/${bob.id}`).expect(204);
    assert.equal(await sessionsOf(bob.id), 0);
    await bobBrowser.get('/api/v1/me').expect(401);
  });

  it('disabling or deleting a connection ends the sessions signed in through it', async () => {
    const u = await buildUser(app, t, { email: 'ada@example.com' });
    const agent = await session('ada@example.com');
    await request(app).patch(`/api/v1/sso-connections/${conn.id}`).set(t.admin).send({ enabled: false }).expect(200);
    await agent.get('/api/v1/me').expect(401);
    await request(app).patch(`/api/v1/sso-connections/${conn.id}`).set(t.admin).send({ enabled: true }).expect(200);
    const again = await session('ada@example.com');
    await request(app).delete(`/api/v1/sso-connections/${conn.id}`).set(t.admin).expect(204);
    await again.get('/api/v1/me').expect(401);
    assert.equal(await sessionsOf(u.id), 0);
  });

  it('ends an idle session, and any session past its maximum age however active', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    // The cookie is replayed by hand: the server, not the browser's cookie expiry, must end it.
    const signedIn = async (on: Express) => {
      const res = await samlSignIn(request.agent(on), conn, (id) =>
        idp.response({ audience: conn.entityId, recipient: conn.acsUrl, nameId: 'ada@example.com', inResponseTo: id }),
      );
      const cookie = setCookies(res)
        .find((c) => c.startsWith('roster_session='))!
        .split(';')[0]!;
      return () => request(on).get('/api/v1/me').set('Cookie', cookie);
    };
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

    const idle = await signedIn(await testApp({ SESSION_IDLE_TIMEOUT: '1s', SESSION_MAX_AGE: '1h' }));
    await idle().expect(200);
    await pause(1300);
    await idle().expect(401);

    // The idle limit never bites here: activity every 0.6 s keeps the session in use, and
    // it still ends once past its maximum age (3 s). Wide margins keep a busy CI machine honest.
    const busy = await signedIn(await testApp({ SESSION_IDLE_TIMEOUT: '3s', SESSION_MAX_AGE: '3s' }));
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      await pause(600);
      await busy().expect(200);
    }
    await pause(Math.max(0, started + 3800 - Date.now()));
    await busy().expect(401);
  });

  it('marks the cookie Secure when the request came over TLS through a trusted proxy, and only then', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const login = async (headers: Record<string, string>) => {
      const res = await samlSignIn(request.agent(app).set(headers), conn, (id) =>
        idp.response({ audience: conn.entityId, recipient: conn.acsUrl, nameId: 'ada@example.com', inResponseTo: id }),
      );
      return setCookies(res).find((c) => c.startsWith('roster_session='))!;
    };
    assert.match(await login({ 'X-Forwarded-Proto': 'https' }), /; Secure/);
    assert.doesNotMatch(await login({}), /; Secure/);
  });

  it('GET /api/v1/me answers for a session or a user-owned key, and refuses the tenant admin key', async () => {
    const u: TestUser = await buildUser(app, t, { email: 'ada@example.com', areas: { knowledge: 'edit' } });
    const byKey = await request(app).get('/api/v1/me').set(u.auth).expect(200);
    assert.equal(byKey.body.user.id, u.id);
    assert.equal(byKey.body.permissions.effective.knowledge.level, 'edit');
    const agent = await session('ada@example.com');
    const me = await agent.get('/api/v1/me').expect(200);
    assert.deepEqual(Object.keys(me.body).sort(), ['permissions', 'user']);
    assert.equal(me.body.user.email, 'ada@example.com');
    assert.equal((await request(app).get('/api/v1/me').set(t.admin).expect(403)).body.code, 'not_a_user');
    await request(app).get('/api/v1/me').expect(401);
  });

  it('a session acts in its own tenant only', async () => {
    await buildUser(app, t, { email: 'boss@example.com', role: 'admin' });
    const agent = await session('boss@example.com');
    const other = await buildTenant();
    const stranger = await buildUser(app, other, { email: 'stranger@example.com' });
    await agent.get(`/api/v1/users/${stranger.id}`).expect(404);
    const page = await agent.get('/api/v1/users').expect(200);
    assert.ok(page.body.items.every((x: { id: string }) => x.id !== stranger.id));
  });

  it('rate-limits /auth per client address', async () => {
    const limited = await testApp({ AUTH_RATE_LIMIT: '3' });
    for (let i = 0; i < 3; i++) await request(limited).get(pathOf(conn.loginUrl)).expect(302);
    const res = await request(limited).get(pathOf(conn.loginUrl)).expect(429);
    assert.ok(Number(res.headers['retry-after']) >= 1);
  });

  it('reads its settings from the environment and refuses inconsistent ones', () => {
    const c = loadConfig({});
    assert.equal(c.sessionSecret, undefined);
    assert.equal(c.sessionIdleMs, 3_600_000);
    assert.equal(c.sessionMaxMs, 12 * 3_600_000);
    assert.equal(c.authRateLimit, 300);
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems.map((p) => p.split(':')[0]);
      }
    };
    assert.deepEqual(problems({ SESSION_IDLE_TIMEOUT: '2d', SESSION_MAX_AGE: '1d' }), ['SESSION_IDLE_TIMEOUT']);
    assert.deepEqual(problems({ SAML_SP_KEY_FILE: '/tmp/k.pem' }), ['SAML_SP_CERT_FILE']);
    assert.deepEqual(problems({ SESSION_SECRET: 'short' }), ['SESSION_SECRET']);
    assert.deepEqual(problems({ SESSION_MAX_AGE: 'forever' }), ['SESSION_MAX_AGE']);
  });
});
