import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { samlSignIn, TestSamlIdp, type SamlConnectionView } from '../../support/saml.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { check, createAgent, createGroup, addMembers } from '../../support/workspace.js';

type Conn = SamlConnectionView & { id: string; name: string };
const isMysql = Boolean(process.env.TEST_DATABASE_URL);

/** The security review's findings R1–R9 against bindings, domains and the group-grant policy: each asserts the safe behaviour. */
describe('security review findings on SSO trust and grants', () => {
  const app = useApp();
  const t = useTenant();
  const corpIdp = new TestSamlIdp();
  const contractorIdp = new TestSamlIdp();
  const connect = (body: Record<string, unknown>) =>
    request(app)
      .post('/api/v1/sso-connections')
      .set(t.admin)
      .send({ protocol: 'saml', ...body });
  const patchConn = (id: string, body: Record<string, unknown>) =>
    request(app).patch(`/api/v1/sso-connections/${id}`).set(t.admin).send(body);
  async function signIn(
    conn: Conn,
    idp: TestSamlIdp,
    nameId: string,
    email: string | null,
    format = 'persistent',
    groups?: string[],
  ) {
    const agent = request.agent(app);
    const attributes: Record<string, string | string[]> = {};
    if (email) attributes.email = email;
    if (groups) attributes.groups = groups;
    const res = await samlSignIn(agent, conn, (id) =>
      idp.response({
        audience: conn.entityId,
        recipient: conn.acsUrl,
        nameId,
        nameIdFormat: `urn:oasis:names:tc:SAML:2.0:nameid-format:${format}`,
        inResponseTo: id,
        attributes,
      }),
    );
    const me = res.status === 303 ? ((await agent.get('/api/v1/me')).body?.user?.id as string | undefined) : undefined;
    return { status: res.status, me, text: res.text };
  }
  async function lastFailure() {
    const events = await auditEvents(app, t, 'login.failed');
    return (events[0]?.after as { reason?: string } | undefined)?.reason;
  }

  it('R1: a connection with domains matching by externalId or userName lands only on users in its domains', async () => {
    const ceo = await scimClient(app, t.scimToken)
      .post(
        '/Users',
        oktaUser('ceo', {
          emails: [{ primary: true, value: 'ceo@corp.example', type: 'work' }],
          externalId: 'ceo-ext',
        }),
      )
      .expect(201);
    await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), domains: ['corp.example'] }).expect(201);
    const byExt: Conn = (
      await connect({
        name: 'Contractors',
        idpMetadataXml: contractorIdp.metadata(),
        domains: ['contractor.example'],
        matchBy: 'externalId',
      }).expect(201)
    ).body;
    const r = await signIn(byExt, contractorIdp, 'ceo-ext', 'someone@contractor.example');
    assert.equal(r.me, undefined, 'signed in as the CEO by externalId');
    assert.equal(await lastFailure(), 'email_domain_not_allowed');
    await patchConn(byExt.id, { matchBy: 'userName' }).expect(200);
    const u = await signIn(byExt, contractorIdp, 'ceo', 'someone@contractor.example');
    assert.equal(u.me, undefined, 'signed in as the CEO by a user name that is not an address');
    // The same match inside the domains still works.
    const carl = await scimClient(app, t.scimToken)
      .post(
        '/Users',
        oktaUser('carl', {
          emails: [{ primary: true, value: 'carl@contractor.example', type: 'work' }],
          externalId: 'carl-ext',
        }),
      )
      .expect(201);
    assert.equal((await signIn(byExt, contractorIdp, 'carl', 'carl@contractor.example')).me, carl.body.id);
    void ceo;
  });

  it('R2: with a transient NameID connection, a user manager cannot re-point a peer by two email edits', async () => {
    const corp: Conn = (await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata() }).expect(201)).body;
    const m = await buildUser(app, t, { email: 'm@corp.example', areas: { account: 'manage' } });
    const v = await buildUser(app, t, { email: 'v@corp.example' });
    assert.equal((await signIn(corp, corpIdp, '_t1', 'm@corp.example', 'transient')).me, m.id);
    assert.equal((await signIn(corp, corpIdp, '_t2', 'v@corp.example', 'transient')).me, v.id);
    const own = await request(app)
      .patch(`/api/v1/users/${m.id}`)
      .set(m.auth)
      .send({ email: 'm-old@corp.example' })
      .expect(403);
    assert.equal(own.body.code, 'admin_required');
    await request(app).patch(`/api/v1/users/${v.id}`).set(m.auth).send({ email: 'm@corp.example' }).expect(403);
    assert.equal((await signIn(corp, corpIdp, '_t3', 'm@corp.example', 'transient')).me, m.id);
    // An admin still may, and it is audited.
    await request(app).patch(`/api/v1/users/${v.id}`).set(t.admin).send({ email: 'v2@corp.example' }).expect(200);
    assert.equal(
      ((await auditEvents(app, t, 'user.email_changed'))[0]!.after as { email: string }).email,
      'v2@corp.example',
    );
  });

  it('R3: two enabled connections without domains, as migration 009 leaves a tenant, match no one by email', async () => {
    const ceo = await buildUser(app, t, { email: 'ceo@corp.example' });
    const corp: Conn = (
      await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), domains: ['corp.example'] }).expect(201)
    ).body;
    const contractor: Conn = (
      await connect({
        name: 'Contractors',
        idpMetadataXml: contractorIdp.metadata(),
        domains: ['contractor.example'],
      }).expect(201)
    ).body;
    await (await testDb()).knex('sso_connections').where({ tenant_id: t.tenant.id }).update({ domains_json: '[]' });
    assert.equal((await signIn(contractor, contractorIdp, 'c-1', 'ceo@corp.example')).me, undefined);
    assert.equal(await lastFailure(), 'connection_domains_required');
    // Adding domains to one is allowed now (it narrows), and that one signs in again.
    await patchConn(corp.id, { domains: ['corp.example'] }).expect(200);
    assert.equal((await signIn(corp, corpIdp, 'ceo-1', 'ceo@corp.example')).me, ceo.id);
    // Emptying them again while two are enabled is refused.
    await patchConn(corp.id, { domains: [] }).expect(409);
  });

  it('R4 (MariaDB): two connections enabled at once without domains: one is refused', async function () {
    if (!isMysql) this.skip();
    const a: Conn = (await connect({ name: 'A', idpMetadataXml: corpIdp.metadata(), enabled: false }).expect(201)).body;
    const b: Conn = (await connect({ name: 'B', idpMetadataXml: contractorIdp.metadata(), enabled: false }).expect(201))
      .body;
    const knex = (await testDb()).knex;
    // Hold the tenant row so both PATCHes wait at the domains check after locking their own row.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const holder = knex.transaction(async (trx) => {
      await trx('tenants')
        .where({ id: t.tenant.id })
        .update({ user_limit: trx.raw('user_limit') });
      await held;
    });
    const pa = patchConn(a.id, { enabled: true }).then((r) => r);
    const pb = patchConn(b.id, { enabled: true }).then((r) => r);
    await new Promise((r) => setTimeout(r, 1500));
    release();
    await holder;
    const [ra, rb] = await Promise.all([pa, pb]);
    const enabled = (await request(app).get('/api/v1/sso-connections').set(t.admin).expect(200)).body.items.filter(
      (c: { enabled: boolean }) => c.enabled,
    );
    assert.deepEqual([[ra.status, rb.status].sort(), enabled.length], [[200, 409], 1]);
  });

  it('R5: moving a group from under an archived parent to a group sharing a restricted data source is refused', async () => {
    const helpdesk = await buildUser(app, t, { areas: { account: 'manage' } });
    const friend = await buildUser(app, t);
    const agent = await createAgent(app, t, 'HR Bot', 'organization');
    const p = await createGroup(app, t, 'Old HR');
    const q = await createGroup(app, t, 'HR');
    const g = await createGroup(app, t, 'Team', p);
    await request(app)
      .post(`/api/v1/agents/${agent}/data-sources`)
      .set(t.admin)
      .send({ name: 'Salaries', access: 'groups', groupIds: [p, q] })
      .expect(201);
    await request(app).patch(`/api/v1/groups/${p}`).set(t.admin).send({ status: 'archived' }).expect(200);
    await addMembers(app, t, g, [friend.id]);
    assert.deepEqual((await check(app, t, agent, friend.id)).dataSources, []);
    const res = await request(app).patch(`/api/v1/groups/${g}`).set(helpdesk.auth).send({ parentId: q });
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.code, 'beyond_own_permissions');
    assert.deepEqual((await check(app, t, agent, friend.id)).dataSources, []);
  });

  it('R6: a JIT sign-in through a connection with domains cannot take a user name outside them', async () => {
    await request(app).patch('/api/v1/tenant').set(t.admin).send({ jitProvisioning: true }).expect(200);
    await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), domains: ['corp.example'] }).expect(201);
    const contractor: Conn = (
      await connect({
        name: 'Contractors',
        idpMetadataXml: contractorIdp.metadata(),
        domains: ['contractor.example'],
      }).expect(201)
    ).body;
    const first = await signIn(contractor, contractorIdp, 'newhire@corp.example', 'x@contractor.example');
    assert.ok(first.me, first.text.slice(0, 300));
    const created = (await request(app).get(`/api/v1/users/${first.me}`).set(t.admin).expect(200)).body;
    assert.equal(created.email, 'x@contractor.example');
    const scim = scimClient(app, t.scimToken);
    const found = (
      await scim.get(`/Users?filter=${encodeURIComponent('userName eq "newhire@corp.example"')}`).expect(200)
    ).body;
    assert.equal(found.totalResults, 0);
    // The corporate new hire is a different user.
    const hire = await scim.post('/Users', oktaUser('newhire@corp.example')).expect(201);
    assert.notEqual(hire.body.id, first.me);
    // Without a trusted address in the domains, nothing is created.
    const none = await signIn(contractor, contractorIdp, 'boss@corp.example', null);
    assert.equal(none.me, undefined);
  });

  it('R7: protocol-wide rules cannot reach a second connection of the protocol', async () => {
    await connect({
      name: 'Corp',
      idpMetadataXml: corpIdp.metadata(),
      attributes: { groups: 'groups' },
      domains: ['corp.example'],
    }).expect(201);
    const finance = await createGroup(app, t, 'Finance');
    const ledger = await createAgent(app, t, 'Ledger');
    const rule = (source: string) => ({
      name: `Finance admins ${source}`,
      enabled: true,
      match: { source, field: 'displayName', operator: 'equals', value: 'Finance Admins' },
      actions: { groups: [{ groupId: finance, role: 'manager' }], agents: [{ agentId: ledger, permission: 'edit' }] },
    });
    const saml = (await request(app).post('/api/v1/mapping-rules').set(t.admin).send(rule('saml')).expect(201)).body;
    // A second SAML connection is refused while a saml rule would match its groups, naming the rule.
    const refused = await connect({
      name: 'Contractors',
      idpMetadataXml: contractorIdp.metadata(),
      attributes: { groups: 'groups' },
      domains: ['contractor.example'],
    }).expect(409);
    assert.equal(refused.body.code, 'protocol_rules_present');
    assert.deepEqual(
      refused.body.rules.map((r: { id: string }) => r.id),
      [saml.id ?? saml.rule?.id],
    );
    await request(app)
      .delete(`/api/v1/mapping-rules/${saml.id ?? saml.rule?.id}`)
      .set(t.admin)
      .expect((r) => assert.ok(r.status < 300, String(r.status)));
    const contractor: Conn = (
      await connect({
        name: 'Contractors',
        idpMetadataXml: contractorIdp.metadata(),
        attributes: { groups: 'groups' },
        domains: ['contractor.example'],
      }).expect(201)
    ).body;
    // Now saml and any rules are refused, naming the field.
    for (const source of ['saml', 'any']) {
      const res = await request(app).post('/api/v1/mapping-rules').set(t.admin).send(rule(source)).expect(422);
      assert.ok(
        res.body.fields.some((f: { path: string }) => f.path === 'body.match.source'),
        JSON.stringify(res.body),
      );
    }
    const carl = await buildUser(app, t, { email: 'carl@contractor.example' });
    const r = await signIn(contractor, contractorIdp, 'c-2', 'carl@contractor.example', 'persistent', [
      'Finance Admins',
    ]);
    assert.equal(r.me, carl.id, r.text.slice(0, 300));
    assert.equal((await check(app, t, ledger, carl.id)).edit, false);
  });

  it('R7: an any rule matching externalId matches SCIM groups only, not a claim of that name', async () => {
    const corp: Conn = (
      await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), attributes: { groups: 'groups' } }).expect(201)
    ).body;
    const ledger = await createAgent(app, t, 'Ledger');
    await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send({
        name: 'Entra finance',
        enabled: true,
        match: { source: 'any', field: 'externalId', operator: 'equals', value: '6f1c-finance' },
        actions: { groups: [], agents: [{ agentId: ledger, permission: 'edit' }] },
      })
      .expect(201);
    const u = await buildUser(app, t, { email: 'u@corp.example' });
    assert.equal((await signIn(corp, corpIdp, 'u-1', 'u@corp.example', 'persistent', ['6f1c-finance'])).me, u.id);
    assert.equal((await check(app, t, ledger, u.id)).edit, false);
  });

  it('R8: once domains are set, a cross-domain binding no longer signs in', async () => {
    const ceo = await buildUser(app, t, { email: 'ceo@corp.example' });
    const corp: Conn = (await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata() }).expect(201)).body;
    const c2: Conn = (
      await connect({ name: 'Contractors', idpMetadataXml: contractorIdp.metadata(), enabled: false }).expect(201)
    ).body;
    await (await testDb())
      .knex('sso_connections')
      .where({ tenant_id: t.tenant.id, id: c2.id })
      .update({ enabled: true });
    await patchConn(corp.id, { enabled: false }).expect(200);
    // The contractor IdP alone, without domains: any address, so it binds to the CEO.
    assert.equal((await signIn(c2, contractorIdp, 'c-1', 'ceo@corp.example')).me, ceo.id);
    await patchConn(corp.id, { enabled: true, domains: ['corp.example'] }).expect(409);
    // Adding domains to an enabled connection passes, whatever the others lack.
    await patchConn(c2.id, { domains: ['contractor.example'] }).expect(200);
    await patchConn(corp.id, { enabled: true, domains: ['corp.example'] }).expect(200);
    assert.equal(
      (await signIn(c2, contractorIdp, 'c-1', 'whatever@contractor.example')).me,
      undefined,
      'still the CEO',
    );
    assert.equal(await lastFailure(), 'email_domain_not_allowed');
  });

  it('R9: a user manager cannot re-point an invited member to a friend', async () => {
    const corp: Conn = (
      await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), domains: ['corp.example'] }).expect(201)
    ).body;
    const helpdesk = await buildUser(app, t, { email: 'helpdesk@corp.example', areas: { account: 'manage' } });
    const bot = await createAgent(app, t, 'Deploy Bot');
    const eng = await createGroup(app, t, 'Engineering');
    await request(app)
      .post(`/api/v1/agents/${bot}/grants`)
      .set(t.admin)
      .send({ groupId: eng, permission: 'edit' })
      .expect(201);
    const inv = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'v@corp.example', role: 'member' });
    assert.ok(inv.status < 300, JSON.stringify(inv.body));
    const v = (inv.body.user ?? inv.body).id as string;
    await addMembers(app, t, eng, [v]);
    const res = await request(app)
      .patch(`/api/v1/users/${v}`)
      .set(helpdesk.auth)
      .send({ email: 'friend@corp.example' })
      .expect(403);
    assert.equal(res.body.code, 'admin_required');
    const r = await signIn(corp, corpIdp, 'okta-friend', 'friend@corp.example');
    assert.notEqual(r.me, v);
  });

  it('a connection pointed at another IdP forgets its bindings, audited', async () => {
    const corp: Conn = (await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata() }).expect(201)).body;
    const ada = await buildUser(app, t, { email: 'ada@corp.example' });
    const bob = await buildUser(app, t, { email: 'bob@corp.example' });
    assert.equal((await signIn(corp, corpIdp, 'n-1', 'ada@corp.example')).me, ada.id);
    await patchConn(corp.id, { idpMetadataXml: contractorIdp.metadata() }).expect(200);
    assert.equal(
      ((await auditEvents(app, t, 'sso_connection.updated'))[0]!.after as { bindingsRemoved?: number }).bindingsRemoved,
      1,
    );
    assert.deepEqual(
      (await request(app).get(`/api/v1/users/${ada.id}/sso-bindings`).set(t.admin).expect(200)).body.items,
      [],
    );
    // The new IdP's subject n-1 is someone else: matched by their own address, not bound to Ada.
    assert.equal((await signIn(corp, contractorIdp, 'n-1', 'bob@corp.example')).me, bob.id);
    // A change that keeps the IdP keeps the bindings.
    await patchConn(corp.id, { name: 'Corp SSO' }).expect(200);
    assert.equal((await signIn(corp, contractorIdp, 'n-1', 'bob@corp.example')).me, bob.id);
  });

  it('two enabled connections cannot speak for the same domain', async () => {
    const corp: Conn = (
      await connect({ name: 'Corp', idpMetadataXml: corpIdp.metadata(), domains: ['corp.example'] }).expect(201)
    ).body;
    const res = await connect({
      name: 'Contractors',
      idpMetadataXml: contractorIdp.metadata(),
      domains: ['contractor.example', 'corp.example'],
    }).expect(409);
    assert.equal(res.body.code, 'connection_domains_overlap');
    const c2: Conn = (
      await connect({
        name: 'Contractors',
        idpMetadataXml: contractorIdp.metadata(),
        domains: ['contractor.example'],
      }).expect(201)
    ).body;
    assert.equal(
      (await patchConn(c2.id, { domains: ['corp.example'] }).expect(409)).body.code,
      'connection_domains_overlap',
    );
    await patchConn(corp.id, { enabled: false }).expect(200);
    await patchConn(c2.id, { domains: ['corp.example'] }).expect(200);
    assert.equal((await patchConn(corp.id, { enabled: true }).expect(409)).body.code, 'connection_domains_overlap');
  });
});
