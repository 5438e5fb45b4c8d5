import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { createAgent } from '../../support/workspace.js';

describe('management API: agents', () => {
  const app = useApp();
  const t = useTenant();

  const api = () => request(app);

  it('registers, reads, lists, changes and deletes agents, auditing each change', async () => {
    const creator = await buildUser(app, t);
    const res = await api()
      .post('/api/v1/agents')
      .set(t.admin)
      .send({
        name: 'Customer Support Agent',
        description: 'Answers tickets',
        accessType: 'organization',
        createdBy: creator.id,
      })
      .expect(201);
    const id = res.body.id as string;
    assert.equal(res.headers.location, `https://roster.test/api/v1/agents/${id}`);
    assert.deepEqual(
      { ...res.body, createdAt: undefined, updatedAt: undefined },
      {
        id,
        name: 'Customer Support Agent',
        description: 'Answers tickets',
        accessType: 'organization',
        createdBy: creator.id,
        createdAt: undefined,
        updatedAt: undefined,
      },
    );
    assert.deepEqual((await api().get(`/api/v1/agents/${id}`).set(t.admin).expect(200)).body, res.body);

    const changed = await api()
      .patch(`/api/v1/agents/${id}`)
      .set(t.admin)
      .send({ name: 'Support Agent', accessType: 'groups' })
      .expect(200);
    assert.equal(changed.body.name, 'Support Agent');
    assert.equal(changed.body.accessType, 'groups');
    assert.equal(changed.body.description, 'Answers tickets');
    await api().patch(`/api/v1/agents/${id}`).set(t.admin).send({ description: null }).expect(200);

    const [created] = await auditEvents(app, t, 'agent.created');
    assert.deepEqual(created!.entity, { type: 'agent', id, name: 'Customer Support Agent' });
    assert.deepEqual(created!.after, {
      name: 'Customer Support Agent',
      description: 'Answers tickets',
      accessType: 'organization',
      createdBy: creator.id,
    });
    const updated = await auditEvents(app, t, 'agent.updated');
    assert.deepEqual(
      updated.map((e) => [e.before, e.after]),
      [
        [{ description: 'Answers tickets' }, { description: null }],
        [{ name: 'Customer Support Agent' }, { name: 'Support Agent' }],
      ],
    );
    const [type] = await auditEvents(app, t, 'agent.access_type_changed');
    assert.deepEqual([type!.before, type!.after], [{ accessType: 'organization' }, { accessType: 'groups' }]);

    const g = (await api().post('/api/v1/groups').set(t.admin).send({ name: 'G' }).expect(201)).body.id;
    await api().post(`/api/v1/agents/${id}/grants`).set(t.admin).send({ groupId: g, permission: 'edit' }).expect(201);
    const ds = (
      await api()
        .post(`/api/v1/agents/${id}/data-sources`)
        .set(t.admin)
        .send({ name: 'Docs', access: 'groups', groupIds: [g] })
        .expect(201)
    ).body.id;
    await api().delete(`/api/v1/agents/${id}`).set(t.admin).expect(204);
    await api().get(`/api/v1/agents/${id}`).set(t.admin).expect(404);
    await api().get(`/api/v1/agents/${id}/grants`).set(t.admin).expect(404);
    const { knex } = await testDb();
    const left = async (table: string, where: Record<string, string>) =>
      Number(
        (
          await knex(table)
            .where({ tenant_id: t.tenant.id, ...where })
            .count({ n: '*' })
        )[0]!.n,
      );
    assert.deepEqual(
      [
        await left('agent_grants', { agent_id: id }),
        await left('agent_data_sources', { agent_id: id }),
        await left('data_source_groups', { data_source_id: ds }),
      ],
      [0, 0, 0],
    );
    const [deleted] = await auditEvents(app, t, 'agent.deleted');
    assert.deepEqual(deleted!.before, {
      name: 'Support Agent',
      description: null,
      accessType: 'groups',
      createdBy: creator.id,
      grantCount: 1,
      dataSourceCount: 1,
    });
    assert.equal(deleted!.after, null);
  });

  it('lists agents oldest first with filters, by cursor', async () => {
    const creator = await buildUser(app, t);
    const ids = [
      await createAgent(app, t, 'One', 'organization'),
      await createAgent(app, t, 'Two', 'groups'),
      await createAgent(app, t, 'Three', 'private', creator.id),
      await createAgent(app, t, 'Four', 'groups'),
    ];
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: request.Response = await api()
        .get('/api/v1/agents')
        .query({ limit: 3, ...(cursor ? { cursor } : {}) })
        .set(t.admin)
        .expect(200);
      seen.push(...page.body.items.map((a: { id: string }) => a.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, ids);
    const groups = await api().get('/api/v1/agents').query({ accessType: 'groups' }).set(t.admin).expect(200);
    assert.deepEqual(
      groups.body.items.map((a: { name: string }) => a.name),
      ['Two', 'Four'],
    );
    const mine = await api().get('/api/v1/agents').query({ createdBy: creator.id }).set(t.admin).expect(200);
    assert.deepEqual(
      mine.body.items.map((a: { name: string }) => a.name),
      ['Three'],
    );
  });

  it('refuses bad agent input with the fields named', async () => {
    const bad = await api().post('/api/v1/agents').set(t.admin).send({ accessType: 'public', owner: 'x' }).expect(400);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), [
      'body.accessType',
      'body.name',
      'body.owner',
    ]);
    const blank = await api().post('/api/v1/agents').set(t.admin).send({ name: ' ', accessType: 'groups' }).expect(400);
    assert.deepEqual(blank.body.fields, [{ path: 'body.name', message: 'must not be blank' }]);
    const creator = await api()
      .post('/api/v1/agents')
      .set(t.admin)
      .send({ name: 'A', accessType: 'private', createdBy: 'nobody' })
      .expect(422);
    assert.equal(creator.body.code, 'unknown_user');
    assert.deepEqual(
      creator.body.fields.map((f: { path: string }) => f.path),
      ['body.createdBy'],
    );
    const id = await createAgent(app, t, 'A');
    await api().patch(`/api/v1/agents/${id}`).set(t.admin).send({}).expect(400);
    await api().patch(`/api/v1/agents/${id}`).set(t.admin).send({ accessType: 'everyone' }).expect(400);
    assert.equal((await api().get('/api/v1/agents').set(t.admin).expect(200)).body.items.length, 1);
  });

  it('lets the creator rename their agent but not change its access type or delete it; others get 403', async () => {
    const creator = await buildUser(app, t);
    const stranger = await buildUser(app, t, { areas: { account: 'manage' } });
    const id = await createAgent(app, t, 'Mine', 'private', creator.id);
    await api().get(`/api/v1/agents/${id}`).set(creator.auth).expect(200);
    await api()
      .patch(`/api/v1/agents/${id}`)
      .set(creator.auth)
      .send({ name: 'Still mine', description: 'Notes' })
      .expect(200);
    const type = await api()
      .patch(`/api/v1/agents/${id}`)
      .set(creator.auth)
      .send({ accessType: 'organization' })
      .expect(403);
    assert.equal(type.body.code, 'admin_required');
    // Naming the access type it already has changes nothing and is allowed.
    await api()
      .patch(`/api/v1/agents/${id}`)
      .set(creator.auth)
      .send({ accessType: 'private', name: 'Mine again' })
      .expect(200);
    await api().delete(`/api/v1/agents/${id}`).set(creator.auth).expect(403);
    await api().get('/api/v1/agents').set(creator.auth).expect(403);
    await api().post('/api/v1/agents').set(creator.auth).send({ name: 'X', accessType: 'private' }).expect(403);
    await api().get(`/api/v1/agents/${id}`).set(stranger.auth).expect(403);
    await api().patch(`/api/v1/agents/${id}`).set(stranger.auth).send({ name: 'Taken' }).expect(403);
    const [renamed] = await auditEvents(app, t, 'agent.updated');
    assert.deepEqual(renamed!.actor, { type: 'user', id: creator.id, display: creator.email });
    assert.equal((await auditEvents(app, t, 'agent.access_type_changed')).length, 0);
  });

  it("never shows or changes another tenant's agents, grants or data sources (404)", async () => {
    const other = await buildTenant();
    const id = await createAgent(app, t, 'Mine');
    const g = (await api().post('/api/v1/groups').set(t.admin).send({ name: 'G' }).expect(201)).body.id;
    const grant = (
      await api().post(`/api/v1/agents/${id}/grants`).set(t.admin).send({ groupId: g, permission: 'edit' }).expect(201)
    ).body.id;
    const ds = (
      await api()
        .post(`/api/v1/agents/${id}/data-sources`)
        .set(t.admin)
        .send({ name: 'D', access: 'all_agent_users' })
        .expect(201)
    ).body.id;
    const o = other.admin;
    await api().get(`/api/v1/agents/${id}`).set(o).expect(404);
    await api().patch(`/api/v1/agents/${id}`).set(o).send({ name: 'Theirs' }).expect(404);
    await api().delete(`/api/v1/agents/${id}`).set(o).expect(404);
    await api().get(`/api/v1/agents/${id}/grants`).set(o).expect(404);
    await api().post(`/api/v1/agents/${id}/grants`).set(o).send({ groupId: g, permission: 'edit' }).expect(404);
    await api().patch(`/api/v1/agents/${id}/grants/${grant}`).set(o).send({ permission: 'view_use' }).expect(404);
    await api().delete(`/api/v1/agents/${id}/grants/${grant}`).set(o).expect(404);
    await api().get(`/api/v1/agents/${id}/data-sources`).set(o).expect(404);
    await api()
      .post(`/api/v1/agents/${id}/data-sources`)
      .set(o)
      .send({ name: 'X', access: 'all_agent_users' })
      .expect(404);
    await api().patch(`/api/v1/agents/${id}/data-sources/${ds}`).set(o).send({ name: 'X' }).expect(404);
    await api().delete(`/api/v1/agents/${id}/data-sources/${ds}`).set(o).expect(404);
    assert.deepEqual((await api().get('/api/v1/agents').set(o).expect(200)).body.items, []);
    // Their agent cannot be granted to our group.
    const theirs = await createAgent(app, other, 'Theirs');
    await api().post(`/api/v1/agents/${theirs}/grants`).set(o).send({ groupId: g, permission: 'edit' }).expect(422);
    await api()
      .post(`/api/v1/agents/${theirs}/data-sources`)
      .set(o)
      .send({ name: 'X', access: 'groups', groupIds: [g] })
      .expect(422);
    // A grant or data source is found only under its own agent.
    const second = await createAgent(app, t, 'Second');
    await api().delete(`/api/v1/agents/${second}/grants/${grant}`).set(t.admin).expect(404);
    await api().delete(`/api/v1/agents/${second}/data-sources/${ds}`).set(t.admin).expect(404);
  });
});
