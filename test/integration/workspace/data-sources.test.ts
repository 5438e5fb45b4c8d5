import assert from 'node:assert/strict';
import request from 'supertest';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { createAgent, createGroup } from '../../support/workspace.js';

describe('management API: agent data sources', () => {
  const app = useApp();
  const t = useTenant();
  let agent: string;
  let support: string;
  let managers: string;
  beforeEach(async () => {
    agent = await createAgent(app, t, 'Product Documentation Assistant');
    support = await createGroup(app, t, 'Support Team');
    managers = await createGroup(app, t, 'Managers');
  });

  const api = () => request(app);
  const url = (id = '') => `/api/v1/agents/${agent}/data-sources${id ? `/${id}` : ''}`;
  const sorted = (xs: string[]) => [...xs].sort();

  it('adds sources open to all agent users or restricted to groups, changes and removes them, auditing each change', async () => {
    const pub = await api()
      .post(url())
      .set(t.admin)
      .send({ name: 'Public Docs', access: 'all_agent_users' })
      .expect(201);
    assert.equal(pub.headers.location, `https://roster.test${url(pub.body.id)}`);
    assert.deepEqual(
      { ...pub.body, createdAt: undefined },
      {
        id: pub.body.id,
        agentId: agent,
        name: 'Public Docs',
        access: 'all_agent_users',
        groupIds: [],
        groups: [],
        createdAt: undefined,
      },
    );
    const wiki = await api()
      .post(url())
      .set(t.admin)
      .send({ name: 'Internal Wiki', access: 'groups', groupIds: [support, managers, support] })
      .expect(201);
    assert.deepEqual(wiki.body.groupIds, sorted([support, managers]));
    assert.deepEqual(
      wiki.body.groups.map((g: { name: string }) => g.name),
      wiki.body.groupIds.map((id: string) => (id === support ? 'Support Team' : 'Managers')),
    );
    const list = await api().get(url()).set(t.admin).expect(200);
    assert.deepEqual(
      list.body.items.map((s: { name: string }) => s.name),
      ['Public Docs', 'Internal Wiki'],
    );

    const narrowed = await api()
      .patch(url(wiki.body.id))
      .set(t.admin)
      .send({ groupIds: [managers] })
      .expect(200);
    assert.deepEqual(narrowed.body.groupIds, [managers]);
    const opened = await api()
      .patch(url(wiki.body.id))
      .set(t.admin)
      .send({ access: 'all_agent_users', name: 'Wiki' })
      .expect(200);
    assert.deepEqual([opened.body.name, opened.body.access, opened.body.groupIds], ['Wiki', 'all_agent_users', []]);
    const closed = await api()
      .patch(url(pub.body.id))
      .set(t.admin)
      .send({ access: 'groups', groupIds: [support] })
      .expect(200);
    assert.deepEqual(closed.body.groups, [{ id: support, name: 'Support Team' }]);
    // A rename alone keeps the restriction.
    assert.deepEqual(
      (await api().patch(url(pub.body.id)).set(t.admin).send({ name: 'Docs' }).expect(200)).body.groupIds,
      [support],
    );
    await api().delete(url(wiki.body.id)).set(t.admin).expect(204);
    await api().delete(url(wiki.body.id)).set(t.admin).expect(404);
    assert.deepEqual(
      (await api().get(url()).set(t.admin).expect(200)).body.items.map((s: { name: string }) => s.name),
      ['Docs'],
    );

    const events = await auditEvents(app, t, 'agent.data_sources_changed');
    assert.equal(events.length, 7);
    assert.ok(
      events.every(
        (e) =>
          e.entity.type === 'agent' && e.entity.id === agent && e.entity.name === 'Product Documentation Assistant',
      ),
    );
    const [removed, , , , narrow, , added] = events;
    assert.deepEqual(added!.before, null);
    assert.deepEqual(added!.after, {
      dataSource: { id: pub.body.id, name: 'Public Docs', access: 'all_agent_users', groups: [] },
    });
    assert.deepEqual(
      (narrow!.before as { dataSource: { groups: { id: string }[] } }).dataSource.groups.map((g) => g.id),
      sorted([support, managers]),
    );
    assert.deepEqual((narrow!.after as { dataSource: { groups: unknown[] } }).dataSource.groups, [
      { id: managers, name: 'Managers' },
    ]);
    assert.deepEqual(removed!.before, {
      dataSource: { id: wiki.body.id, name: 'Wiki', access: 'all_agent_users', groups: [] },
    });
    assert.equal(removed!.after, null);
  });

  it('requires groupIds with access groups and refuses them otherwise; groups must exist and be active', async () => {
    const missing = await api().post(url()).set(t.admin).send({ name: 'X', access: 'groups' }).expect(400);
    assert.deepEqual(missing.body.fields, [{ path: 'body.groupIds', message: 'is required when access is groups' }]);
    await api().post(url()).set(t.admin).send({ name: 'X', access: 'groups', groupIds: [] }).expect(400);
    const extra = await api()
      .post(url())
      .set(t.admin)
      .send({ name: 'X', access: 'all_agent_users', groupIds: [support] })
      .expect(400);
    assert.equal(extra.body.code, 'groups_not_allowed');
    const bad = await api().post(url()).set(t.admin).send({ access: 'some', groupIds: 'x' }).expect(400);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), [
      'body.access',
      'body.groupIds',
      'body.name',
    ]);
    const unknown = await api()
      .post(url())
      .set(t.admin)
      .send({ name: 'X', access: 'groups', groupIds: [support, 'nope'] })
      .expect(422);
    assert.equal(unknown.body.code, 'unknown_group');
    assert.deepEqual(unknown.body.unknownGroupIds, ['nope']);
    assert.deepEqual(
      unknown.body.fields.map((f: { path: string }) => f.path),
      ['body.groupIds'],
    );

    const ds = (
      await api()
        .post(url())
        .set(t.admin)
        .send({ name: 'Kept', access: 'groups', groupIds: [support] })
        .expect(201)
    ).body.id;
    await api().patch(`/api/v1/groups/${managers}`).set(t.admin).send({ status: 'archived' }).expect(200);
    const archived = await api()
      .post(url())
      .set(t.admin)
      .send({ name: 'X', access: 'groups', groupIds: [managers] })
      .expect(422);
    assert.equal(archived.body.code, 'group_archived');
    await api()
      .patch(url(ds))
      .set(t.admin)
      .send({ groupIds: [support, managers] })
      .expect(422);
    await api().patch(`/api/v1/groups/${support}`).set(t.admin).send({ status: 'archived' }).expect(200);
    // A group archived after it was named stays named: a rename does not fail on it.
    await api().patch(url(ds)).set(t.admin).send({ name: 'Renamed' }).expect(200);
    await api().patch(url(ds)).set(t.admin).send({ access: 'groups', groupIds: [] }).expect(400);
    await api().patch(url(ds)).set(t.admin).send({}).expect(400);
    await api().patch(url('nope')).set(t.admin).send({ name: 'X' }).expect(404);
    await api()
      .post('/api/v1/agents/nope/data-sources')
      .set(t.admin)
      .send({ name: 'X', access: 'all_agent_users' })
      .expect(404);
    assert.deepEqual(
      (await api().get(url()).set(t.admin).expect(200)).body.items.map((s: { name: string; groupIds: string[] }) => [
        s.name,
        s.groupIds,
      ]),
      [['Renamed', [support]]],
    );
  });

  it('is for admins only', async () => {
    const ds = (await api().post(url()).set(t.admin).send({ name: 'D', access: 'all_agent_users' }).expect(201)).body
      .id;
    const userManager = await buildUser(app, t, { areas: { account: 'manage' } });
    for (const auth of [userManager.auth, (await buildUser(app, t)).auth]) {
      await api().get(url()).set(auth).expect(403);
      await api().post(url()).set(auth).send({ name: 'X', access: 'all_agent_users' }).expect(403);
      await api().patch(url(ds)).set(auth).send({ name: 'X' }).expect(403);
      await api().delete(url(ds)).set(auth).expect(403);
    }
  });
});
