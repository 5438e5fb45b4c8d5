import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { addMembers, createAgent, createGroup } from '../../support/workspace.js';

describe('management API: local groups', () => {
  const app = useApp();
  const t = useTenant();

  const api = () => request(app);

  it('creates, reads, changes and deletes a group, auditing each change with before and after', async () => {
    const parent = await createGroup(app, t, 'Support Department');
    const created = await api()
      .post('/api/v1/groups')
      .set(t.admin)
      .send({ name: ' Tier 1 Support ', description: 'First line', parentId: parent })
      .expect(201);
    assert.equal(created.headers.location, `https://roster.test/api/v1/groups/${created.body.id}`);
    assert.deepEqual(
      { ...created.body, id: undefined, createdAt: undefined, updatedAt: undefined },
      {
        id: undefined,
        name: 'Tier 1 Support',
        description: 'First line',
        status: 'active',
        parentId: parent,
        memberCount: 0,
        createdAt: undefined,
        updatedAt: undefined,
      },
    );
    const id = created.body.id as string;
    const u = await buildUser(app, t);
    await addMembers(app, t, id, [u.id]);
    const got = await api().get(`/api/v1/groups/${id}`).set(t.admin).expect(200);
    assert.equal(got.body.parentId, parent);
    assert.equal(got.body.memberCount, 1);

    const changed = await api()
      .patch(`/api/v1/groups/${id}`)
      .set(t.admin)
      .send({ name: 'Tier One', description: null, parentId: null, status: 'archived' })
      .expect(200);
    assert.equal(changed.body.name, 'Tier One');
    assert.equal(changed.body.description, null);
    assert.equal(changed.body.parentId, null);
    assert.equal(changed.body.status, 'archived');
    // A PATCH that changes nothing records nothing.
    await api().patch(`/api/v1/groups/${id}`).set(t.admin).send({ name: 'Tier One' }).expect(200);

    await api().delete(`/api/v1/groups/${id}`).set(t.admin).expect(204);
    await api().get(`/api/v1/groups/${id}`).set(t.admin).expect(404);

    const [createdEvent] = (await auditEvents(app, t, 'group.created')).filter((e) => e.entity.id === id);
    assert.deepEqual(createdEvent!.before, null);
    assert.deepEqual(createdEvent!.after, {
      name: 'Tier 1 Support',
      description: 'First line',
      parentId: parent,
      status: 'active',
    });
    assert.deepEqual(createdEvent!.entity, { type: 'group', id, name: 'Tier 1 Support' });
    const updated = await auditEvents(app, t, 'group.updated');
    assert.equal(updated.length, 1);
    assert.deepEqual(updated[0]!.before, {
      name: 'Tier 1 Support',
      description: 'First line',
      parentId: parent,
      status: 'active',
    });
    assert.deepEqual(updated[0]!.after, { name: 'Tier One', description: null, parentId: null, status: 'archived' });
    const deleted = await auditEvents(app, t, 'group.deleted');
    assert.deepEqual(deleted[0]!.before, {
      name: 'Tier One',
      description: null,
      parentId: null,
      status: 'archived',
      memberCount: 1,
    });
    assert.equal(deleted[0]!.after, null);
    assert.equal(deleted[0]!.actor.type, 'api_key');
  });

  it('lists by name with filters, paging by cursor without gaps or repeats', async () => {
    const root = await createGroup(app, t, 'Support');
    const names = ['Support Tier 2', 'support tier 1', 'Sales', 'Engineering'];
    const ids = new Map<string, string>([['Support', root]]);
    for (const n of names)
      ids.set(n, await createGroup(app, t, n, n.toLowerCase().startsWith('support tier') ? root : undefined));
    await api()
      .patch(`/api/v1/groups/${ids.get('Sales')}`)
      .set(t.admin)
      .send({ status: 'archived' })
      .expect(200);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: request.Response = await api()
        .get('/api/v1/groups')
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .set(t.admin)
        .expect(200);
      assert.ok(page.body.items.length <= 2);
      seen.push(...page.body.items.map((g: { name: string }) => g.name));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, ['Engineering', 'Sales', 'Support', 'support tier 1', 'Support Tier 2']);

    const q = async (query: Record<string, string | number | boolean>) =>
      (await api().get('/api/v1/groups').query(query).set(t.admin).expect(200)).body.items.map(
        (g: { name: string }) => g.name,
      );
    assert.deepEqual(await q({ name: 'SUPPORT T' }), ['support tier 1', 'Support Tier 2']);
    assert.deepEqual(await q({ parentId: root }), ['support tier 1', 'Support Tier 2']);
    assert.deepEqual(await q({ topLevel: true }), ['Engineering', 'Sales', 'Support']);
    assert.deepEqual(await q({ topLevel: false }), ['support tier 1', 'Support Tier 2']);
    assert.deepEqual(await q({ status: 'archived' }), ['Sales']);
    assert.deepEqual(await q({ name: '%' }), []);

    const bad = await api().get('/api/v1/groups').query({ status: 'gone', limit: 0 }).set(t.admin).expect(400);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), ['query.limit', 'query.status']);
    assert.equal(
      (await api().get('/api/v1/groups').query({ cursor: 'nonsense' }).set(t.admin).expect(400)).body.code,
      'invalid_cursor',
    );
  });

  it('refuses bad input with the fields named, and changes nothing', async () => {
    const missing = await api()
      .post('/api/v1/groups')
      .set(t.admin)
      .send({ description: 'x', colour: 'red' })
      .expect(400);
    assert.deepEqual(missing.body.fields.map((f: { path: string }) => f.path).sort(), ['body.colour', 'body.name']);
    const blank = await api().post('/api/v1/groups').set(t.admin).send({ name: '   ' }).expect(400);
    assert.deepEqual(blank.body.fields, [{ path: 'body.name', message: 'must not be blank' }]);
    const long = await api()
      .post('/api/v1/groups')
      .set(t.admin)
      .send({ name: 'x'.repeat(201) })
      .expect(400);
    assert.equal(long.body.fields[0].path, 'body.name');
    const orphan = await api()
      .post('/api/v1/groups')
      .set(t.admin)
      .send({ name: 'Orphan', parentId: 'nope' })
      .expect(422);
    assert.equal(orphan.body.code, 'unknown_group');
    assert.deepEqual(
      orphan.body.fields.map((f: { path: string }) => f.path),
      ['body.parentId'],
    );
    const g = await createGroup(app, t, 'Real');
    const empty = await api().patch(`/api/v1/groups/${g}`).set(t.admin).send({}).expect(400);
    assert.equal(empty.body.code, 'invalid_body');
    const status = await api().patch(`/api/v1/groups/${g}`).set(t.admin).send({ status: 'deleted' }).expect(400);
    assert.deepEqual(status.body.fields, [{ path: 'body.status', message: 'must be one of active, archived' }]);
    await api().patch(`/api/v1/groups/${g}`).set(t.admin).send({ parentId: 'nope' }).expect(422);
    const list = await api().get('/api/v1/groups').set(t.admin).expect(200);
    assert.deepEqual(
      list.body.items.map((x: { name: string; parentId: string | null }) => [x.name, x.parentId]),
      [['Real', null]],
    );
  });

  it('keeps names unique per tenant regardless of case (409), but not across tenants', async () => {
    await createGroup(app, t, 'Sales Team');
    const dup = await api().post('/api/v1/groups').set(t.admin).send({ name: 'SALES team ' }).expect(409);
    assert.equal(dup.body.code, 'group_name_taken');
    assert.match(dup.body.detail, /Sales team/i);
    const other = await createGroup(app, t, 'Support Team');
    const rename = await api().patch(`/api/v1/groups/${other}`).set(t.admin).send({ name: 'sales team' }).expect(409);
    assert.equal(rename.body.code, 'group_name_taken');
    await createGroup(app, await buildTenant(), 'Sales Team');
  });

  it('refuses parents that would make a cycle (422 naming it), three levels deep included', async () => {
    const a = await createGroup(app, t, 'A');
    const b = await createGroup(app, t, 'B', a);
    const c = await createGroup(app, t, 'C', b);
    const self = await api().patch(`/api/v1/groups/${a}`).set(t.admin).send({ parentId: a }).expect(422);
    assert.equal(self.body.code, 'group_cycle');
    assert.deepEqual(
      self.body.cycle.map((g: { name: string }) => g.name),
      ['A', 'A'],
    );
    const two = await api().patch(`/api/v1/groups/${a}`).set(t.admin).send({ parentId: b }).expect(422);
    assert.deepEqual(
      two.body.cycle.map((g: { name: string }) => g.name),
      ['A', 'B', 'A'],
    );
    const three = await api().patch(`/api/v1/groups/${a}`).set(t.admin).send({ parentId: c }).expect(422);
    assert.equal(three.body.code, 'group_cycle');
    assert.deepEqual(
      three.body.cycle.map((g: { id: string }) => g.id),
      [a, c, b, a],
    );
    assert.match(three.body.detail, /A → C → B → A/);
    assert.deepEqual(
      three.body.fields.map((f: { path: string }) => f.path),
      ['body.parentId'],
    );
    assert.equal((await api().get(`/api/v1/groups/${a}`).set(t.admin).expect(200)).body.parentId, null);
    // Moving a subtree elsewhere is fine: C to the top, then A under C.
    await api().patch(`/api/v1/groups/${c}`).set(t.admin).send({ parentId: null }).expect(200);
    await api().patch(`/api/v1/groups/${a}`).set(t.admin).send({ parentId: c }).expect(200);
    assert.equal((await auditEvents(app, t, 'group.updated')).length, 2);
  });

  it('lets only one of two concurrent moves close a loop', async () => {
    for (let round = 0; round < 3; round++) {
      const a = await createGroup(app, t, `A${round}`);
      const b = await createGroup(app, t, `B${round}`);
      const results = await Promise.all([
        api().patch(`/api/v1/groups/${a}`).set(t.admin).send({ parentId: b }),
        api().patch(`/api/v1/groups/${b}`).set(t.admin).send({ parentId: a }),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 422], JSON.stringify(results.map((r) => r.body)));
    }
  });

  it('refuses to delete a group with children (409 listing them); deleting takes its grants and restrictions along', async () => {
    const parent = await createGroup(app, t, 'Parent');
    const child = await createGroup(app, t, 'Child', parent);
    const refused = await api().delete(`/api/v1/groups/${parent}`).set(t.admin).expect(409);
    assert.equal(refused.body.code, 'group_has_children');
    assert.deepEqual(refused.body.children, [{ id: child, name: 'Child' }]);

    const keep = await createGroup(app, t, 'Keep');
    const agent = await createAgent(app, t, 'Helper');
    const g1 = (
      await api()
        .post(`/api/v1/agents/${agent}/grants`)
        .set(t.admin)
        .send({ groupId: child, permission: 'edit' })
        .expect(201)
    ).body.id;
    const g2 = (
      await api()
        .post(`/api/v1/agents/${agent}/grants`)
        .set(t.admin)
        .send({ groupId: keep, permission: 'view_use' })
        .expect(201)
    ).body.id;
    const only = (
      await api()
        .post(`/api/v1/agents/${agent}/data-sources`)
        .set(t.admin)
        .send({ name: 'Wiki', access: 'groups', groupIds: [child] })
        .expect(201)
    ).body.id;
    const shared = (
      await api()
        .post(`/api/v1/agents/${agent}/data-sources`)
        .set(t.admin)
        .send({ name: 'Docs', access: 'groups', groupIds: [child, keep] })
        .expect(201)
    ).body.id;
    const u = await buildUser(app, t);
    await addMembers(app, t, child, [u.id]);

    await api().delete(`/api/v1/groups/${child}`).set(t.admin).expect(204);
    const grants = await api().get(`/api/v1/agents/${agent}/grants`).set(t.admin).expect(200);
    assert.deepEqual(
      grants.body.items.map((g: { id: string }) => g.id),
      [g2],
    );
    const sources = await api().get(`/api/v1/agents/${agent}/data-sources`).set(t.admin).expect(200);
    const byId = new Map(sources.body.items.map((s: { id: string; groupIds: string[]; access: string }) => [s.id, s]));
    // A source that loses its only group stays restricted: it must not open to every agent user.
    assert.deepEqual(byId.get(only), { ...(byId.get(only) as object), access: 'groups', groupIds: [] });
    assert.deepEqual((byId.get(shared) as { groupIds: string[] }).groupIds, [keep]);
    await api().delete(`/api/v1/groups/${parent}`).set(t.admin).expect(204);

    const removed = await auditEvents(app, t, 'agent.grant_removed');
    assert.equal(removed.length, 1);
    assert.deepEqual(removed[0]!.entity, { type: 'agent', id: agent, name: 'Helper' });
    assert.deepEqual(removed[0]!.before, {
      grantId: g1,
      agentId: agent,
      agentName: 'Helper',
      groupId: child,
      groupName: 'Child',
      permission: 'edit',
      startDate: null,
      endDate: null,
      timeZone: 'UTC',
    });
    const ds = (await auditEvents(app, t, 'agent.data_sources_changed')).filter((e) => e.before !== null);
    assert.equal(ds.length, 2);
    const docs = ds.find((e) => (e.before as { dataSource: { id: string } }).dataSource.id === shared)!;
    assert.deepEqual(
      (docs.before as { dataSource: { groups: unknown[] } }).dataSource.groups,
      [
        { id: child, name: 'Child' },
        { id: keep, name: 'Keep' },
      ].sort((x, y) => x.id.localeCompare(y.id)),
    );
    assert.deepEqual((docs.after as { dataSource: { groups: unknown[] } }).dataSource.groups, [
      { id: keep, name: 'Keep' },
    ]);
  });

  it('lets admins and user managers manage groups; plain members get 403', async () => {
    const manager = await buildUser(app, t, { areas: { account: 'manage' } });
    const member = await buildUser(app, t);
    const g = (await api().post('/api/v1/groups').set(manager.auth).send({ name: 'By a user manager' }).expect(201))
      .body.id;
    await api().patch(`/api/v1/groups/${g}`).set(manager.auth).send({ description: 'ok' }).expect(200);
    const byManager = (await auditEvents(app, t, 'group.created'))[0]!;
    assert.deepEqual(byManager.actor, { type: 'user', id: manager.id, display: manager.email });

    for (const [method, path, body] of [
      ['get', '/api/v1/groups', undefined],
      ['post', '/api/v1/groups', { name: 'Nope' }],
      ['get', `/api/v1/groups/${g}`, undefined],
      ['patch', `/api/v1/groups/${g}`, { name: 'Nope' }],
      ['delete', `/api/v1/groups/${g}`, undefined],
      ['get', `/api/v1/groups/${g}/members`, undefined],
    ] as const) {
      const res = await api()[method](path).set(member.auth).send(body).expect(403);
      assert.ok(['not_allowed', 'admin_required'].includes(res.body.code), `${method} ${path}: ${res.body.code}`);
    }
    await api().delete(`/api/v1/groups/${g}`).set(manager.auth).expect(204);
  });

  it("never shows or changes another tenant's groups (404)", async () => {
    const other = await buildTenant();
    const g = await createGroup(app, t, 'Mine');
    const u = await buildUser(app, t);
    await addMembers(app, t, g, [u.id]);
    await api().get(`/api/v1/groups/${g}`).set(other.admin).expect(404);
    await api().patch(`/api/v1/groups/${g}`).set(other.admin).send({ name: 'Theirs' }).expect(404);
    await api().delete(`/api/v1/groups/${g}`).set(other.admin).expect(404);
    await api().get(`/api/v1/groups/${g}/members`).set(other.admin).expect(404);
    await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(other.admin)
      .send({ userIds: [u.id] })
      .expect(404);
    await api()
      .post(`/api/v1/groups/${g}/members/remove`)
      .set(other.admin)
      .send({ userIds: [u.id] })
      .expect(404);
    await api().delete(`/api/v1/groups/${g}/members/${u.id}`).set(other.admin).expect(404);
    // Their own group cannot take our users or our group as parent.
    const theirs = await createGroup(app, other, 'Theirs');
    const bad = await api()
      .post(`/api/v1/groups/${theirs}/members`)
      .set(other.admin)
      .send({ userIds: [u.id] })
      .expect(400);
    assert.equal(bad.body.code, 'unknown_users');
    await api().patch(`/api/v1/groups/${theirs}`).set(other.admin).send({ parentId: g }).expect(422);
    assert.deepEqual(
      (await api().get('/api/v1/groups').set(other.admin).expect(200)).body.items.map((x: { name: string }) => x.name),
      ['Theirs'],
    );
    assert.equal((await api().get(`/api/v1/groups/${g}`).set(t.admin).expect(200)).body.memberCount, 1);
  });
});
