import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { samlSignIn, TestSamlIdp, type SamlConnectionView, setCookies } from '../../support/saml.js';
import { check, createAgent, createGroup } from '../../support/workspace.js';

type Conn = SamlConnectionView & { id: string; name: string };

/**
 * One connection, one trust space (review F8, F9): an IdP identity is bound to its user at the
 * first sign-in, email edits never move it, and a second IdP can assert neither the first
 * one's users nor its groups.
 */
describe('SSO: bindings, domains and claim groups per connection', () => {
  const app = useApp();
  const t = useTenant();
  let corp: Conn;
  const corpIdp = new TestSamlIdp();
  const contractorIdp = new TestSamlIdp();

  beforeEach(async () => {
    corp = (
      await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), attributes: { groups: 'groups' } }).expect(201)
    ).body;
  });

  const connect = (body: Record<string, unknown>) =>
    request(app)
      .post('/api/v1/sso-connections')
      .set(t.admin)
      .send({ protocol: 'saml', ...body });
  const patchConn = (id: string, body: Record<string, unknown>) =>
    request(app).patch(`/api/v1/sso-connections/${id}`).set(t.admin).send(body);

  /**
   * A browser signing in through `conn` as the IdP identity `subject` (a persistent NameID)
   * whose email attribute is `email`.
   */
  async function signIn(
    conn: Conn,
    subject: string,
    email: string,
    extra: { groups?: string[]; idp?: TestSamlIdp; nameIdFormat?: string } = {},
  ) {
    const agent = request.agent(app);
    const idp = extra.idp ?? corpIdp;
    const res = await samlSignIn(agent, conn, (id) =>
      idp.response({
        audience: conn.entityId,
        recipient: conn.acsUrl,
        nameId: subject,
        nameIdFormat: extra.nameIdFormat ?? 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        inResponseTo: id,
        attributes: { email, ...(extra.groups ? { groups: extra.groups } : {}) },
      }),
    );
    return { res, agent };
  }

  async function signedInAs(
    conn: Conn,
    subject: string,
    email: string,
    extra: Parameters<typeof signIn>[3] = {},
  ): Promise<string> {
    const { res, agent } = await signIn(conn, subject, email, extra);
    assert.equal(res.status, 303, res.text);
    return (await agent.get('/api/v1/me').expect(200)).body.user.id;
  }

  async function refused(res: request.Response, reason: string) {
    assert.equal(res.status, 403, res.text);
    assert.ok(res.text.includes(`Reason: ${reason}.`), res.text);
    assert.equal(
      setCookies(res).some((c) => c.startsWith('roster_session=')),
      false,
    );
    assert.equal(((await auditEvents(app, t, 'login.failed'))[0]!.after as { reason: string }).reason, reason);
  }

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
  const bindings = async (userId: string) =>
    (await request(app).get(`/api/v1/users/${userId}/sso-bindings`).set(t.admin).expect(200)).body.items as {
      connectionId: string;
      subject: string;
    }[];

  describe('bindings (F8)', () => {
    it('defeats the two-edit takeover: a user manager cannot re-point emails, and even after an admin does, M signs in as M, not as V', async () => {
      const m = await buildUser(app, t, { email: 'm@corp.example', areas: { account: 'manage' } });
      const v = await buildUser(app, t, { email: 'v@corp.example' });
      assert.equal(await signedInAs(corp, 'okta-m', 'm@corp.example'), m.id);
      const { agent: vBrowser } = await signIn(corp, 'okta-v', 'v@corp.example');
      await vBrowser.get('/api/v1/me').expect(200);
      assert.deepEqual(
        (await bindings(m.id)).map((b) => [b.connectionId, b.subject]),
        [[corp.id, 'okta-m']],
      );

      // The review's edits, by M: refused, the addresses stay.
      assert.equal(
        (
          await request(app)
            .patch(`/api/v1/users/${m.id}`)
            .set(m.auth)
            .send({ email: 'm-old@corp.example' })
            .expect(403)
        ).body.code,
        'admin_required',
      );
      assert.equal(
        (await request(app).patch(`/api/v1/users/${v.id}`).set(m.auth).send({ email: 'm@corp.example' }).expect(403))
          .body.code,
        'admin_required',
      );
      assert.equal(
        (await request(app).get(`/api/v1/users/${v.id}`).set(t.admin).expect(200)).body.email,
        'v@corp.example',
      );

      // The same edits by an admin change the emails, end V's session, are audited, and move no sign-in.
      await request(app).patch(`/api/v1/users/${m.id}`).set(t.admin).send({ email: 'm-old@corp.example' }).expect(200);
      await request(app).patch(`/api/v1/users/${v.id}`).set(t.admin).send({ email: 'm@corp.example' }).expect(200);
      await vBrowser.get('/api/v1/me').expect(401);
      assert.equal(await sessionsOf(v.id), 0);
      const changed = await auditEvents(app, t, 'user.email_changed');
      assert.deepEqual(changed[0]!.after, { email: 'm@corp.example', sessionsEnded: 1 });
      assert.equal(changed[0]!.entity.id, v.id);
      assert.equal(await signedInAs(corp, 'okta-m', 'm@corp.example'), m.id);
      assert.equal(await signedInAs(corp, 'okta-v', 'v@corp.example'), v.id);
    });

    it('a user manager cannot change the email even of someone who never signed in through SSO', async () => {
      const manager = await buildUser(app, t, { areas: { account: 'manage' } });
      const u = await buildUser(app, t);
      const res = await request(app)
        .patch(`/api/v1/users/${u.id}`)
        .set(manager.auth)
        .send({ email: 'renamed@corp.example' })
        .expect(403);
      assert.equal(res.body.code, 'admin_required');
    });

    it('refuses another identity of the same IdP that claims the email of a bound user', async () => {
      const v = await buildUser(app, t, { email: 'v@corp.example' });
      await signedInAs(corp, 'okta-v', 'v@corp.example');
      await refused((await signIn(corp, 'okta-impostor', 'v@corp.example')).res, 'bound_to_other_identity');
      // An admin removes the binding (audited): the next first sign-in matches by email again.
      await request(app).delete(`/api/v1/users/${v.id}/sso-bindings/${corp.id}`).set(t.admin).expect(204);
      await request(app).delete(`/api/v1/users/${v.id}/sso-bindings/${corp.id}`).set(t.admin).expect(404);
      assert.deepEqual((await auditEvents(app, t, 'sso.binding_removed'))[0]!.before, {
        connectionId: corp.id,
        subject: 'okta-v',
      });
      assert.equal(await signedInAs(corp, 'okta-v2', 'v@corp.example'), v.id);
      assert.deepEqual(
        (await bindings(v.id)).map((b) => b.subject),
        ['okta-v2'],
      );
    });

    it('two first sign-ins at once: the same identity both get in with one binding; two identities for one user, only one', async () => {
      const u = await buildUser(app, t, { email: 'race@corp.example' });
      const same = await Promise.all([
        signIn(corp, 'okta-race', 'race@corp.example'),
        signIn(corp, 'okta-race', 'race@corp.example'),
      ]);
      assert.deepEqual(
        same.map((r) => r.res.status),
        [303, 303],
      );
      assert.deepEqual(
        (await bindings(u.id)).map((b) => b.subject),
        ['okta-race'],
      );

      const w = await buildUser(app, t, { email: 'race2@corp.example' });
      const two = await Promise.all([
        signIn(corp, 'okta-a', 'race2@corp.example'),
        signIn(corp, 'okta-b', 'race2@corp.example'),
      ]);
      assert.deepEqual(two.map((r) => r.res.status).sort(), [303, 403]);
      const winner = two.find((r) => r.res.status === 303)!;
      assert.equal((await winner.agent.get('/api/v1/me').expect(200)).body.user.id, w.id);
      assert.equal((await bindings(w.id)).length, 1);
    });

    it('binds a user created at first sign-in (JIT), and binds nothing for a transient NameID', async () => {
      await request(app).patch('/api/v1/tenant').set(t.admin).send({ jitProvisioning: true }).expect(200);
      const jit = await signedInAs(corp, 'okta-new', 'new@corp.example');
      assert.deepEqual(
        (await bindings(jit)).map((b) => b.subject),
        ['okta-new'],
      );
      const u = await buildUser(app, t, { email: 'temp@corp.example' });
      assert.equal(
        await signedInAs(corp, '_transient-1', 'temp@corp.example', {
          nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
        }),
        u.id,
      );
      assert.equal(
        await signedInAs(corp, '_transient-2', 'temp@corp.example', {
          nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
        }),
        u.id,
      );
      assert.deepEqual(await bindings(u.id), []);
    });

    it('deleting a user removes their bindings; deleting a connection removes its bindings', async () => {
      const u = await buildUser(app, t, { email: 'gone@corp.example' });
      await signedInAs(corp, 'okta-gone', 'gone@corp.example');
      await request(app).delete(`/api/v1/users/${u.id}`).set(t.admin).expect(204);
      // The same identity now finds the new holder of the address: the old binding is gone.
      const next = await buildUser(app, t, { email: 'gone@corp.example' });
      assert.equal(await signedInAs(corp, 'okta-gone', 'gone@corp.example'), next.id);
      const db = (await testDb()).knex;
      assert.equal(
        Number(
          (await db('sso_bindings').where({ tenant_id: t.tenant.id, user_id: u.id }).count({ n: '*' }).first())!.n,
        ),
        0,
      );
      await request(app).delete(`/api/v1/sso-connections/${corp.id}`).set(t.admin).expect(204);
      assert.deepEqual(await bindings(next.id), []);
    });

    it('only admins read or remove bindings', async () => {
      const manager = await buildUser(app, t, { areas: { account: 'manage' } });
      await request(app).get(`/api/v1/users/${manager.id}/sso-bindings`).set(manager.auth).expect(403);
      await request(app).delete(`/api/v1/users/${manager.id}/sso-bindings/${corp.id}`).set(manager.auth).expect(403);
      const other = await buildTenant();
      await request(app).get(`/api/v1/users/${manager.id}/sso-bindings`).set(other.admin).expect(404);
    });
  });

  describe('domains (F9)', () => {
    it('validates domains: lowercase DNS names, bounded', async () => {
      const bad = async (domains: unknown) =>
        assert.equal(
          (await patchConn(corp.id, { domains }).expect(400)).body.code,
          'invalid_body',
          JSON.stringify(domains),
        );
      await bad(['Corp.Example']);
      await bad(['corp']);
      await bad(['corp.example.']);
      await bad(['-corp.example']);
      await bad(['a@corp.example']);
      await bad([`${'a'.repeat(64)}.example`]);
      await bad(Array.from({ length: 51 }, (_, i) => `d${i}.example`));
      await bad(['corp.example', 'corp.example']);
      const ok = await patchConn(corp.id, { domains: ['corp.example', 'xn--bcher-kva.example'] }).expect(200);
      assert.deepEqual(ok.body.domains, ['corp.example', 'xn--bcher-kva.example']);
      assert.deepEqual(
        (await request(app).get(`/api/v1/sso-connections/${corp.id}`).set(t.admin).expect(200)).body.domains,
        ['corp.example', 'xn--bcher-kva.example'],
      );
    });

    it('a second enabled connection needs domains on every enabled connection (409 naming those without)', async () => {
      const second = { name: 'Contractors', idpMetadataXml: contractorIdp.metadata() };
      let res = await connect(second).expect(409);
      assert.equal(res.body.code, 'connection_domains_required');
      assert.deepEqual(res.body.connections.map((c: { name: string }) => c.name).sort(), ['Contractors', 'Corp']);
      res = await connect({ ...second, domains: ['contractor.example'] }).expect(409);
      assert.deepEqual(res.body.connections, [{ id: corp.id, name: 'Corp' }]);
      // Disabled, it may wait without domains; enabling it is the same check.
      const off = (await connect({ ...second, enabled: false }).expect(201)).body;
      assert.deepEqual(
        (await patchConn(off.id, { enabled: true }).expect(409)).body.connections
          .map((c: { name: string }) => c.name)
          .sort(),
        ['Contractors', 'Corp'],
      );
      await patchConn(corp.id, { domains: ['corp.example'] }).expect(200);
      await patchConn(off.id, { enabled: true, domains: ['contractor.example'] }).expect(200);
      assert.deepEqual((await patchConn(corp.id, { domains: [] }).expect(409)).body.connections, [
        { id: corp.id, name: 'Corp' },
      ]);
      await patchConn(off.id, { enabled: false }).expect(200);
      await patchConn(corp.id, { domains: [] }).expect(200);
    });

    it('two connections created at once without domains: one is refused', async () => {
      const fresh = await buildTenant();
      const make = (name: string, idp: TestSamlIdp) =>
        request(app)
          .post('/api/v1/sso-connections')
          .set(fresh.admin)
          .send({ protocol: 'saml', name, idpMetadataXml: idp.metadata() });
      const answers = await Promise.all([make('A', corpIdp), make('B', contractorIdp)]);
      assert.deepEqual(answers.map((r) => r.status).sort(), [201, 409]);
      assert.equal(
        (await request(app).get('/api/v1/sso-connections').set(fresh.admin).expect(200)).body.items.length,
        1,
      );
    });

    it('a contractor IdP cannot sign anyone in as the CEO, and its groups are not the corporate ones', async () => {
      const ceo = await buildUser(app, t, { email: 'ceo@corp.example' });
      const finance = await createGroup(app, t, 'Finance');
      const ledger = await createAgent(app, t, 'Ledger');
      await patchConn(corp.id, { domains: ['corp.example'] }).expect(200);
      const contractor: Conn = (
        await connect({
          name: 'Contractors',
          idpMetadataXml: contractorIdp.metadata(),
          attributes: { groups: 'groups' },
          domains: ['contractor.example'],
        }).expect(201)
      ).body;
      await request(app)
        .post('/api/v1/mapping-rules')
        .set(t.admin)
        .send({
          name: 'Finance admins',
          enabled: true,
          match: {
            source: 'connection',
            connectionId: corp.id,
            field: 'displayName',
            operator: 'equals',
            value: 'Finance Admins',
          },
          actions: {
            groups: [{ groupId: finance, role: 'manager' }],
            agents: [{ agentId: ledger, permission: 'edit' }],
          },
        })
        .expect(201);

      await refused(
        (await signIn(contractor, 'c-1', 'ceo@corp.example', { idp: contractorIdp, groups: ['Finance Admins'] })).res,
        'email_domain_not_allowed',
      );
      const failed = (await auditEvents(app, t, 'login.failed'))[0]!;
      assert.equal((failed.after as { connectionId: string }).connectionId, contractor.id);

      const carl = await buildUser(app, t, { email: 'carl@contractor.example' });
      assert.equal(
        await signedInAs(contractor, 'c-2', 'carl@contractor.example', {
          idp: contractorIdp,
          groups: ['Finance Admins'],
        }),
        carl.id,
      );
      assert.equal(
        (await check(app, t, ledger, carl.id)).use,
        false,
        'the contractor IdP asserted the corporate group name',
      );
      assert.equal(await signedInAs(corp, 'okta-ceo', 'ceo@corp.example', { groups: ['Finance Admins'] }), ceo.id);
      assert.equal((await check(app, t, ledger, ceo.id)).edit, true);

      // Two IdP groups of the same name, one per connection.
      const groupOf = async (userId: string) =>
        (await request(app).get(`/api/v1/users/${userId}/idp-groups`).set(t.admin).expect(200)).body.items as {
          id: string;
          displayName: string;
        }[];
      const [carls] = await groupOf(carl.id);
      const [ceos] = await groupOf(ceo.id);
      assert.equal(carls!.displayName, 'Finance Admins');
      assert.equal(ceos!.displayName, 'Finance Admins');
      assert.notEqual(carls!.id, ceos!.id);

      // A rule source must name one of the tenant's connections.
      const rule = (source: string, connectionId?: string) =>
        request(app)
          .post('/api/v1/mapping-rules')
          .set(t.admin)
          .send({
            name: 'x',
            enabled: true,
            match: {
              source,
              ...(connectionId ? { connectionId } : {}),
              field: 'displayName',
              operator: 'equals',
              value: 'x',
            },
            actions: { groups: [], agents: [] },
          });
      assert.deepEqual(
        (await rule('connection').expect(422)).body.fields.map((f: { path: string }) => f.path),
        ['body.match.connectionId'],
      );
      assert.deepEqual(
        (await rule('connection', 'no-such-connection').expect(422)).body.fields.map((f: { path: string }) => f.path),
        ['body.match.connectionId'],
      );
      assert.deepEqual(
        (await rule('scim', corp.id).expect(422)).body.fields.map((f: { path: string }) => f.path),
        ['body.match.connectionId'],
      );
      const otherTenant = await buildTenant();
      await request(app)
        .post('/api/v1/mapping-rules')
        .set(otherTenant.admin)
        .send({
          name: 'x',
          enabled: true,
          match: { source: 'connection', connectionId: corp.id, field: 'displayName', operator: 'equals', value: 'x' },
          actions: { groups: [], agents: [] },
        })
        .expect(422);

      // Deleting the corporate connection takes its groups, and what they gave, with it.
      await request(app).delete(`/api/v1/sso-connections/${corp.id}`).set(t.admin).expect(204);
      assert.equal((await check(app, t, ledger, ceo.id)).edit, false);
    });

    it("a sign-in replaces only its own connection's claim groups, and takes the user out of the unowned ones from before migration 009", async () => {
      const u = await buildUser(app, t, { email: 'ada@corp.example' });
      const db = (await testDb()).knex;
      const now = Date.now();
      const unowned = {
        tenant_id: t.tenant.id,
        source: 'saml',
        connection_id: '',
        display_name: 'Legacy',
        display_name_key: 'legacy',
        external_id: 'Legacy',
        scim_doc: '{}',
        version: 1,
        created_at: now,
        updated_at: now,
      };
      await db('idp_groups').insert({ ...unowned, id: `legacy-${now}` });
      await db('idp_group_members').insert({
        tenant_id: t.tenant.id,
        group_id: `legacy-${now}`,
        member_id: u.id,
        member_type: 'User',
        created_at: now,
      });
      // Two enabled connections never speak for one domain: the user moves from one IdP to the other.
      await patchConn(corp.id, { domains: ['corp.example'], enabled: false }).expect(200);
      const other: Conn = (
        await connect({
          name: 'Other',
          idpMetadataXml: contractorIdp.metadata(),
          attributes: { groups: 'groups' },
          domains: ['corp.example'],
        }).expect(201)
      ).body;
      await signedInAs(other, 'o-ada', 'ada@corp.example', { idp: contractorIdp, groups: ['Ops'] });
      await patchConn(other.id, { enabled: false }).expect(200);
      await patchConn(corp.id, { enabled: true }).expect(200);
      await signedInAs(corp, 'okta-ada', 'ada@corp.example', { groups: ['Eng'] });
      const names = async () =>
        (
          (await request(app).get(`/api/v1/users/${u.id}/idp-groups`).set(t.admin).expect(200)).body.items as {
            displayName: string;
          }[]
        )
          .map((g) => g.displayName)
          .sort();
      assert.deepEqual(await names(), ['Eng', 'Ops']);
      await signedInAs(corp, 'okta-ada', 'ada@corp.example', { groups: [] });
      assert.deepEqual(await names(), ['Ops']);
    });

    it('holds a user name shaped like an address to the domains too (matchBy userName)', async () => {
      const ceo = await buildUser(app, t, { email: 'ceo@corp.example' });
      await patchConn(corp.id, { domains: ['corp.example'] }).expect(200);
      const contractor: Conn = (
        await connect({
          name: 'Contractors',
          idpMetadataXml: contractorIdp.metadata(),
          matchBy: 'userName',
          domains: ['contractor.example'],
        }).expect(201)
      ).body;
      await refused(
        (await signIn(contractor, 'ceo@corp.example', 'someone@contractor.example', { idp: contractorIdp })).res,
        'email_domain_not_allowed',
      );
      await patchConn(corp.id, { matchBy: 'userName' }).expect(200);
      assert.equal(await signedInAs(corp, 'ceo@corp.example', 'ceo@corp.example'), ceo.id);
    });

    it('without domains (one connection) any address matches; a sub-domain is not its parent', async () => {
      await buildUser(app, t, { email: 'ada@elsewhere.example' });
      await signedInAs(corp, 'okta-ada', 'ada@elsewhere.example');
      await patchConn(corp.id, { domains: ['corp.example'] }).expect(200);
      await buildUser(app, t, { email: 'eve@eu.corp.example' });
      await refused((await signIn(corp, 'okta-eve', 'eve@eu.corp.example')).res, 'email_domain_not_allowed');
      await buildUser(app, t, { email: 'bob@CORP.example' });
      await signedInAs(corp, 'okta-bob', 'bob@CORP.example');
    });
  });
});
