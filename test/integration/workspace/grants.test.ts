import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { liveRuleRow } from '../../support/mapping.js';
import { createAgent, createGroup } from '../../support/workspace.js';

describe('management API: agent grants', () => {
  const app = useApp();
  const t = useTenant();
  let agent: string;
  let group: string;
  beforeEach(async () => {
    agent = await createAgent(app, t, 'Customer Support Agent');
    group = await createGroup(app, t, 'Support Team');
  });

  const api = () => request(app);
  const post = (body: object, auth = t.admin) => api().post(`/api/v1/agents/${agent}/grants`).set(auth).send(body);
  const paths = (res: request.Response) => (res.body.fields as { path: string }[]).map((f) => f.path);

  it("grants to a group and to a user, dated or not, in the tenant's time zone by default, audited as seed 004 shows", async () => {
    const u = await buildUser(app, t);
    const toGroup = await post({
      groupId: group,
      permission: 'view_use',
      startDate: '2024-12-01',
      endDate: '2025-01-15',
    }).expect(201);
    assert.equal(toGroup.headers.location, `https://roster.test/api/v1/agents/${agent}/grants/${toGroup.body.id}`);
    assert.deepEqual(
      { ...toGroup.body, createdAt: undefined },
      {
        id: toGroup.body.id,
        agentId: agent,
        subjectType: 'group',
        groupId: group,
        userId: null,
        subjectName: 'Support Team',
        permission: 'view_use',
        startDate: '2024-12-01',
        endDate: '2025-01-15',
        timeZone: 'UTC',
        source: 'manual',
        ruleId: null,
        idpGroupId: null,
        createdAt: undefined,
      },
    );
    const db = await testDb();
    await db.knex('tenants').where({ id: t.tenant.id }).update({ time_zone: 'America/New_York' });
    const toUser = await post({ userId: u.id, permission: 'edit', endDate: '2025-03-09' }).expect(201);
    assert.equal(toUser.body.timeZone, 'America/New_York');
    assert.equal(toUser.body.subjectName, u.email);
    assert.equal(toUser.body.startDate, null);
    // The zone is stored resolved: the tenant's later change moves no existing window.
    await db.knex('tenants').where({ id: t.tenant.id }).update({ time_zone: 'UTC' });
    const named = await post({ groupId: group, permission: 'edit', timeZone: 'europe/london' }).expect(201);
    assert.equal(named.body.timeZone, 'Europe/London');

    const list = await api().get(`/api/v1/agents/${agent}/grants`).set(t.admin).expect(200);
    assert.deepEqual(
      list.body.items.map((g: { id: string; timeZone: string }) => [g.id, g.timeZone]),
      [
        [toGroup.body.id, 'UTC'],
        [toUser.body.id, 'America/New_York'],
        [named.body.id, 'Europe/London'],
      ],
    );
    const forUser = await api().get(`/api/v1/agents/${agent}/grants`).query({ userId: u.id }).set(t.admin).expect(200);
    assert.deepEqual(
      forUser.body.items.map((g: { id: string }) => g.id),
      [toUser.body.id],
    );
    const paged = await api().get(`/api/v1/agents/${agent}/grants`).query({ limit: 2 }).set(t.admin).expect(200);
    const rest = await api()
      .get(`/api/v1/agents/${agent}/grants`)
      .query({ limit: 2, cursor: paged.body.nextCursor })
      .set(t.admin)
      .expect(200);
    assert.deepEqual(
      rest.body.items.map((g: { id: string }) => g.id),
      [named.body.id],
    );
    assert.equal(rest.body.nextCursor, null);

    const created = await auditEvents(app, t, 'agent.grant_created');
    assert.equal(created.length, 3);
    const first = created.at(-1)!;
    assert.deepEqual(first.entity, { type: 'agent', id: agent, name: 'Customer Support Agent' });
    assert.equal(first.before, null);
    assert.deepEqual(first.after, {
      grantId: toGroup.body.id,
      agentId: agent,
      agentName: 'Customer Support Agent',
      groupId: group,
      groupName: 'Support Team',
      permission: 'view_use',
      startDate: '2024-12-01',
      endDate: '2025-01-15',
      timeZone: 'UTC',
    });
    assert.deepEqual(
      { ...(created.at(-2)!.after as object), grantId: undefined },
      {
        grantId: undefined,
        agentId: agent,
        agentName: 'Customer Support Agent',
        userId: u.id,
        email: u.email,
        permission: 'edit',
        startDate: null,
        endDate: '2025-03-09',
        timeZone: 'America/New_York',
      },
    );
  });

  it('changes the permission, dates and zone of a grant and removes it, auditing before and after', async () => {
    const id = (
      await post({ groupId: group, permission: 'view_use', startDate: '2025-01-01', endDate: '2025-06-30' }).expect(201)
    ).body.id;
    const url = `/api/v1/agents/${agent}/grants/${id}`;
    const up = await api().patch(url).set(t.admin).send({ permission: 'edit' }).expect(200);
    assert.equal(up.body.permission, 'edit');
    assert.equal(up.body.endDate, '2025-06-30');
    const open = await api().patch(url).set(t.admin).send({ endDate: null, timeZone: 'Asia/Tokyo' }).expect(200);
    assert.deepEqual([open.body.startDate, open.body.endDate, open.body.timeZone], ['2025-01-01', null, 'Asia/Tokyo']);
    // A change to what it already is records nothing.
    await api().patch(url).set(t.admin).send({ permission: 'edit' }).expect(200);
    const changed = await auditEvents(app, t, 'agent.grant_changed');
    assert.equal(changed.length, 2);
    const level = changed.at(-1)!;
    assert.deepEqual(
      [(level.before as { permission: string }).permission, (level.after as { permission: string }).permission],
      ['view_use', 'edit'],
    );
    assert.equal((level.after as { groupName: string }).groupName, 'Support Team');

    await api().delete(url).set(t.admin).expect(204);
    await api().delete(url).set(t.admin).expect(404);
    await api().patch(url).set(t.admin).send({ permission: 'edit' }).expect(404);
    const [removed] = await auditEvents(app, t, 'agent.grant_removed');
    assert.equal(removed!.after, null);
    assert.deepEqual(removed!.before, {
      grantId: id,
      agentId: agent,
      agentName: 'Customer Support Agent',
      groupId: group,
      groupName: 'Support Team',
      permission: 'edit',
      startDate: '2025-01-01',
      endDate: null,
      timeZone: 'Asia/Tokyo',
    });
  });

  it('validates dates as real calendar days, start before end, and zones as IANA names', async () => {
    assert.deepEqual(
      paths(
        await post({ groupId: group, permission: 'edit', startDate: '2024-02-30', endDate: '2023-13-01' }).expect(400),
      ),
      ['body.startDate', 'body.endDate'],
    );
    assert.deepEqual(paths(await post({ groupId: group, permission: 'edit', startDate: '2024-1-1' }).expect(400)), [
      'body.startDate',
    ]);
    const zone = await post({ groupId: group, permission: 'edit', timeZone: 'Mars/Olympus_Mons' }).expect(400);
    assert.deepEqual(zone.body.fields, [
      { path: 'body.timeZone', message: '"Mars/Olympus_Mons" is not an IANA time zone' },
    ]);
    assert.deepEqual(paths(await post({ groupId: group, permission: 'edit', timeZone: 'UTC+2' }).expect(400)), [
      'body.timeZone',
    ]);
    const order = await post({
      groupId: group,
      permission: 'edit',
      startDate: '2025-02-01',
      endDate: '2025-01-31',
    }).expect(400);
    assert.deepEqual(order.body.fields, [
      { path: 'body.endDate', message: 'must not be before startDate (2025-02-01)' },
    ]);
    await post({ groupId: group, permission: 'edit', startDate: '2024-02-29', endDate: '2024-02-29' }).expect(201);
    assert.deepEqual(paths(await post({ groupId: group, permission: 'own' }).expect(400)), ['body.permission']);
    assert.equal((await post({ permission: 'edit' }).expect(400)).body.code, 'invalid_subject');
    assert.equal(
      (await post({ groupId: group, userId: 'x', permission: 'edit' }).expect(400)).body.code,
      'invalid_subject',
    );
    const id = (await post({ groupId: group, permission: 'edit', startDate: '2025-03-01' }).expect(201)).body.id;
    const patch = await api()
      .patch(`/api/v1/agents/${agent}/grants/${id}`)
      .set(t.admin)
      .send({ endDate: '2025-02-28' })
      .expect(400);
    assert.deepEqual(paths(patch), ['body.endDate']);
    await api().patch(`/api/v1/agents/${agent}/grants/${id}`).set(t.admin).send({ groupId: group }).expect(400);
    assert.equal((await api().get(`/api/v1/agents/${agent}/grants`).set(t.admin).expect(200)).body.items.length, 2);
  });

  it('refuses grants on private agents, to archived or unknown groups and unknown users (422), and duplicates (409)', async () => {
    const creator = await buildUser(app, t);
    const priv = await createAgent(app, t, 'Diary', 'private', creator.id);
    const p = await api()
      .post(`/api/v1/agents/${priv}/grants`)
      .set(t.admin)
      .send({ groupId: group, permission: 'view_use' })
      .expect(422);
    assert.equal(p.body.code, 'private_agent');
    const unknown = await post({ groupId: 'nope', permission: 'edit' }).expect(422);
    assert.equal(unknown.body.code, 'unknown_group');
    assert.deepEqual(paths(unknown), ['body.groupId']);
    assert.equal((await post({ userId: 'nope', permission: 'edit' }).expect(422)).body.code, 'unknown_user');
    await api().patch(`/api/v1/groups/${group}`).set(t.admin).send({ status: 'archived' }).expect(200);
    const archived = await post({ groupId: group, permission: 'edit' }).expect(422);
    assert.equal(archived.body.code, 'group_archived');
    assert.deepEqual(paths(archived), ['body.groupId']);
    await api()
      .post('/api/v1/agents/nope/grants')
      .set(t.admin)
      .send({ groupId: group, permission: 'edit' })
      .expect(404);

    const first = (await post({ userId: creator.id, permission: 'edit', endDate: '2025-01-01' }).expect(201)).body.id;
    const dup = await post({ userId: creator.id, permission: 'edit', endDate: '2025-01-01', timeZone: 'utc' }).expect(
      409,
    );
    assert.equal(dup.body.code, 'grant_exists');
    assert.equal(dup.body.grantId, first);
    // Overlapping grants with another level or window are allowed: the highest in force applies.
    await post({ userId: creator.id, permission: 'view_use' }).expect(201);
    assert.equal((await auditEvents(app, t, 'agent.grant_created')).length, 2);
  });

  it('keeps grants when an agent turns private, and leaves rule-derived grants to their rule (409)', async () => {
    const id = (await post({ groupId: group, permission: 'edit' }).expect(201)).body.id;
    await api().patch(`/api/v1/agents/${agent}`).set(t.admin).send({ accessType: 'private' }).expect(200);
    assert.deepEqual(
      (await api().get(`/api/v1/agents/${agent}/grants`).set(t.admin).expect(200)).body.items.map(
        (g: { id: string }) => g.id,
      ),
      [id],
    );

    const u = await buildUser(app, t);
    const db = await testDb();
    await liveRuleRow(t, 'rule-9');
    await db.knex('agent_grants').insert({
      tenant_id: t.tenant.id,
      id: 'derived-grant-1',
      agent_id: agent,
      subject_type: 'user',
      subject_id: u.id,
      permission: 'view_use',
      time_zone: 'UTC',
      rule_id: 'rule-9',
      rule_version: 1,
      idp_group_id: 'idp-9',
      created_at: Date.now(),
    });
    const rules = await api().get(`/api/v1/agents/${agent}/grants`).query({ source: 'rule' }).set(t.admin).expect(200);
    assert.deepEqual(
      rules.body.items.map((g: { id: string; source: string; ruleId: string; idpGroupId: string }) => [
        g.id,
        g.source,
        g.ruleId,
        g.idpGroupId,
      ]),
      [['derived-grant-1', 'rule', 'rule-9', 'idp-9']],
    );
    const manual = await api()
      .get(`/api/v1/agents/${agent}/grants`)
      .query({ source: 'manual' })
      .set(t.admin)
      .expect(200);
    assert.deepEqual(
      manual.body.items.map((g: { id: string }) => g.id),
      [id],
    );
    const change = await api()
      .patch(`/api/v1/agents/${agent}/grants/derived-grant-1`)
      .set(t.admin)
      .send({ permission: 'edit' })
      .expect(409);
    assert.equal(change.body.code, 'rule_grant');
    assert.equal(change.body.ruleId, 'rule-9');
    await api().delete(`/api/v1/agents/${agent}/grants/derived-grant-1`).set(t.admin).expect(409);
  });

  it("removes a deleted user's direct grants", async () => {
    const u = await buildUser(app, t);
    await post({ userId: u.id, permission: 'edit' }).expect(201);
    const groupGrant = (await post({ groupId: group, permission: 'view_use' }).expect(201)).body.id;
    await api().delete(`/api/v1/users/${u.id}`).set(t.admin).expect(204);
    const left = await api().get(`/api/v1/agents/${agent}/grants`).set(t.admin).expect(200);
    assert.deepEqual(
      left.body.items.map((g: { id: string }) => g.id),
      [groupGrant],
    );
  });

  it('is for admins only: user managers and members get 403', async () => {
    const id = (await post({ groupId: group, permission: 'edit' }).expect(201)).body.id;
    const userManager = await buildUser(app, t, { areas: { account: 'manage' } });
    const member = await buildUser(app, t);
    const admin = await buildUser(app, t, { role: 'admin' });
    for (const who of [userManager, member]) {
      assert.equal(
        (await post({ groupId: group, permission: 'view_use' }, who.auth).expect(403)).body.code,
        'admin_required',
      );
      await api().get(`/api/v1/agents/${agent}/grants`).set(who.auth).expect(403);
      await api()
        .patch(`/api/v1/agents/${agent}/grants/${id}`)
        .set(who.auth)
        .send({ permission: 'view_use' })
        .expect(403);
      await api().delete(`/api/v1/agents/${agent}/grants/${id}`).set(who.auth).expect(403);
    }
    await api()
      .patch(`/api/v1/agents/${agent}/grants/${id}`)
      .set(admin.auth)
      .send({ permission: 'view_use' })
      .expect(200);
  });
});
