import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { addMembers, check, createAgent, createGroup, grant } from '../../support/workspace.js';

describe('the agent access check', () => {
  const app = useApp();
  const t = useTenant();

  it('seed 004 scenario 1: department agents reach their department only', async () => {
    const depts = ['Sales Team', 'Support Team', 'Engineering Team'];
    const groups = await Promise.all(depts.map((d) => createGroup(app, t, d)));
    const agents = await Promise.all(
      ['Sales Agent', 'Support Agent', 'Engineering Agent'].map((a) => createAgent(app, t, a)),
    );
    const people = await Promise.all(depts.map(() => buildUser(app, t)));
    for (let i = 0; i < 3; i++) {
      await addMembers(app, t, groups[i]!, [people[i]!.id]);
      await grant(app, t, agents[i]!, { groupId: groups[i]!, permission: 'view_use' });
    }
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const c = await check(app, t, agents[j]!, people[i]!.id);
        assert.equal(c.use, i === j, `${depts[i]} on agent ${j}`);
        assert.equal(c.edit, false);
        assert.equal(c.delete, false);
        assert.equal(c.managePermissions, false);
      }
    }
    const sales = await check(app, t, agents[0]!, people[0]!.id);
    assert.deepEqual(sales.reasons, ['group Sales Team grants view_use']);
    const none = await check(app, t, agents[1]!, people[0]!.id);
    assert.deepEqual(none.reasons, ['no grant in force for the user or their groups']);
  });

  it("seed 004 scenario 2 and inheritance three levels deep: child groups inherit their ancestors' grants", async () => {
    const dept = await createGroup(app, t, 'Support Department');
    const tier1 = await createGroup(app, t, 'Tier 1 Support', dept);
    const tier2 = await createGroup(app, t, 'Tier 2 Support', dept);
    const night = await createGroup(app, t, 'Tier 2 Night Shift', tier2);
    const managers = await createGroup(app, t, 'Support Managers');
    const basic = await createAgent(app, t, 'Basic Support Agent');
    const advanced = await createAgent(app, t, 'Advanced Support Agent');
    await grant(app, t, basic, { groupId: dept, permission: 'view_use' });
    await grant(app, t, advanced, { groupId: tier2, permission: 'view_use' });
    await grant(app, t, basic, { groupId: managers, permission: 'edit' });
    await grant(app, t, advanced, { groupId: managers, permission: 'edit' });
    const junior = await buildUser(app, t);
    const senior = await buildUser(app, t);
    const nightOwl = await buildUser(app, t);
    const manager = await buildUser(app, t);
    await addMembers(app, t, tier1, [junior.id]);
    await addMembers(app, t, tier2, [senior.id]);
    await addMembers(app, t, night, [nightOwl.id]);
    await addMembers(app, t, managers, [manager.id]);

    assert.equal((await check(app, t, basic, junior.id)).use, true);
    assert.equal((await check(app, t, advanced, junior.id)).use, false);
    assert.equal((await check(app, t, advanced, senior.id)).use, true);
    const deep = await check(app, t, basic, nightOwl.id);
    assert.equal(deep.use, true);
    assert.deepEqual(deep.reasons, [
      'group Support Department grants view_use, inherited by its descendant Tier 2 Night Shift of which the user is a member',
    ]);
    const adv = await check(app, t, advanced, nightOwl.id);
    assert.equal(adv.level, 'view_use');
    const m = await check(app, t, advanced, manager.id);
    assert.equal(m.edit, true);
    assert.equal(m.delete, false);
    const direct = await check(app, t, advanced, senior.id);
    assert.deepEqual(direct.reasons, ['group Tier 2 Support (child of Support Department) grants view_use']);
  });

  it("seed 004 scenario 3: a project group's access ends after its end date, with no job", async () => {
    const project = await createGroup(app, t, 'Product Launch Q1 2024');
    const docs = await createAgent(app, t, 'Product Documentation Agent');
    await grant(app, t, docs, {
      groupId: project,
      permission: 'view_use',
      startDate: '2024-01-01',
      endDate: '2024-03-31',
      timeZone: 'UTC',
    });
    const u = await buildUser(app, t);
    await addMembers(app, t, project, [u.id]);
    assert.equal((await check(app, t, docs, u.id, '2023-12-31T23:59:59Z')).use, false);
    const during = await check(app, t, docs, u.id, '2024-02-15T12:00:00Z');
    assert.equal(during.use, true);
    assert.deepEqual(during.reasons, [
      'group Product Launch Q1 2024 grants view_use from 2024-01-01 until 2024-03-31 UTC',
    ]);
    assert.equal((await check(app, t, docs, u.id, '2024-03-31T23:59:59Z')).use, true);
    const after = await check(app, t, docs, u.id, '2024-04-01T00:00:00Z');
    assert.equal(after.use, false);
    assert.match(after.reasons.join(' '), /not in force: it has ended/);
    assert.equal((await check(app, t, docs, u.id)).use, false, 'ended long ago by now');
  });

  it('seed 004 scenario 4: consultants use the agent but retrieve only from public data', async () => {
    const consultants = await createGroup(app, t, 'External Consultants');
    const support = await createGroup(app, t, 'Support Team');
    const managers = await createGroup(app, t, 'Managers');
    const agent = await createAgent(app, t, 'Client-Facing Assistant');
    for (const g of [consultants, support, managers])
      await grant(app, t, agent, { groupId: g, permission: 'view_use' });
    const source = async (name: string, body: object) =>
      (
        await request(app)
          .post(`/api/v1/agents/${agent}/data-sources`)
          .set(t.admin)
          .send({ name, ...body })
          .expect(201)
      ).body.id as string;
    await source('Public Docs', { access: 'all_agent_users' });
    await source('Internal Wiki', { access: 'groups', groupIds: [support] });
    await source('Customer Data', { access: 'groups', groupIds: [managers] });
    const consultant = await buildUser(app, t);
    const supporter = await buildUser(app, t);
    const boss = await buildUser(app, t);
    await addMembers(app, t, consultants, [consultant.id]);
    await addMembers(app, t, support, [supporter.id]);
    await addMembers(app, t, support, [boss.id]);
    await addMembers(app, t, managers, [boss.id]);
    const names = async (userId: string) => (await check(app, t, agent, userId)).dataSources.map((d) => d.name).sort();
    assert.deepEqual(await names(consultant.id), ['Public Docs']);
    assert.deepEqual(await names(supporter.id), ['Internal Wiki', 'Public Docs']);
    assert.deepEqual(await names(boss.id), ['Customer Data', 'Internal Wiki', 'Public Docs']);
    const c = await check(app, t, agent, consultant.id);
    assert.deepEqual([c.view, c.use, c.edit], [true, true, false]);
    // A data source restricted to a group is open to members of its descendants too.
    const sub = await createGroup(app, t, 'Support Night', support);
    const nightOwl = await buildUser(app, t);
    await addMembers(app, t, sub, [nightOwl.id]);
    assert.deepEqual(await names(nightOwl.id), ['Internal Wiki', 'Public Docs']);
  });

  it('grant windows follow local days in two time zones across DST changes', async () => {
    const g = await createGroup(app, t, 'Seasonal');
    const london = await createAgent(app, t, 'London Agent');
    const newYork = await createAgent(app, t, 'New York Agent');
    // Europe/London: BST starts 2025-03-30 and ends 2025-10-26.
    await grant(app, t, london, {
      groupId: g,
      permission: 'view_use',
      startDate: '2025-03-30',
      endDate: '2025-10-26',
      timeZone: 'Europe/London',
    });
    // America/New_York: EDT starts 2025-03-09 and ends 2025-11-02.
    await grant(app, t, newYork, {
      groupId: g,
      permission: 'view_use',
      startDate: '2025-03-09',
      endDate: '2025-11-02',
      timeZone: 'America/New_York',
    });
    const u = await buildUser(app, t);
    await addMembers(app, t, g, [u.id]);
    const at = async (agent: string, instant: string) => (await check(app, t, agent, u.id, instant)).use;
    // London: 00:00 GMT on the start day (still GMT), the end day's local midnight is in GMT again.
    assert.equal(await at(london, '2025-03-29T23:59:59Z'), false);
    assert.equal(await at(london, '2025-03-30T00:00:00Z'), true);
    assert.equal(await at(london, '2025-10-26T23:59:59Z'), true);
    assert.equal(await at(london, '2025-10-27T00:00:00Z'), false);
    // New York: the start day begins at 05:00Z (EST), the end day ends at 05:00Z the next day (EST again).
    assert.equal(await at(newYork, '2025-03-09T04:59:59Z'), false);
    assert.equal(await at(newYork, '2025-03-09T05:00:00Z'), true);
    assert.equal(await at(newYork, '2025-11-03T04:59:59Z'), true);
    assert.equal(await at(newYork, '2025-11-03T05:00:00Z'), false);
    const reason = (await check(app, t, newYork, u.id, '2025-07-01T12:00:00Z')).reasons[0];
    assert.equal(reason, 'group Seasonal grants view_use from 2025-03-09 until 2025-11-02 America/New_York');
  });

  it('overlapping grants give the highest one in force', async () => {
    const g = await createGroup(app, t, 'Editors');
    const agent = await createAgent(app, t, 'Overlap Agent');
    await grant(app, t, agent, { groupId: g, permission: 'view_use' });
    await grant(app, t, agent, {
      groupId: g,
      permission: 'edit',
      startDate: '2025-01-10',
      endDate: '2025-01-20',
      timeZone: 'UTC',
    });
    const u = await buildUser(app, t);
    await addMembers(app, t, g, [u.id]);
    assert.equal((await check(app, t, agent, u.id, '2025-01-05T00:00:00Z')).level, 'view_use');
    const inside = await check(app, t, agent, u.id, '2025-01-15T00:00:00Z');
    assert.equal(inside.level, 'edit');
    assert.equal(inside.reasons.length, 2);
    assert.equal((await check(app, t, agent, u.id, '2025-01-21T00:00:00Z')).level, 'view_use');
    // A grant to the user directly counts as well.
    const solo = await buildUser(app, t);
    await grant(app, t, agent, { userId: solo.id, permission: 'edit' });
    const s = await check(app, t, agent, solo.id);
    assert.equal(s.edit, true);
    assert.deepEqual(s.reasons, ['a grant made to the user directly grants edit']);
  });

  it('access types: organization for every active user, private for its creator and admins', async () => {
    const everyone = await createAgent(app, t, 'Org Agent', 'organization');
    const creator = await buildUser(app, t);
    const secret = await createAgent(app, t, 'Secret Agent', 'private', creator.id);
    const member = await buildUser(app, t);
    const admin = await buildUser(app, t, { role: 'admin' });
    const org = await check(app, t, everyone, member.id);
    assert.deepEqual([org.view, org.use, org.edit], [true, true, false]);
    assert.deepEqual(org.reasons, ['the agent is available to the whole organization']);
    const mine = await check(app, t, secret, creator.id);
    assert.deepEqual([mine.use, mine.edit, mine.delete], [true, true, false]);
    const theirs = await check(app, t, secret, member.id);
    assert.equal(theirs.use, false);
    assert.match(theirs.reasons[0]!, /private/);
    const boss = await check(app, t, secret, admin.id);
    assert.deepEqual(
      [boss.view, boss.use, boss.edit, boss.delete, boss.managePermissions],
      [true, true, true, true, true],
    );
    const g = await createGroup(app, t, 'Nobody');
    const refused = await request(app)
      .post(`/api/v1/agents/${secret}/grants`)
      .set(t.admin)
      .send({ groupId: g, permission: 'view_use' })
      .expect(422);
    assert.ok(refused.body.detail);
  });

  it('suspended, invited and deleted users have no access; an archived group gives nothing; managers may edit', async () => {
    const g = await createGroup(app, t, 'Ops');
    const agent = await createAgent(app, t, 'Ops Agent');
    await grant(app, t, agent, { groupId: g, permission: 'view_use' });
    const u = await buildUser(app, t);
    const lead = await buildUser(app, t);
    await addMembers(app, t, g, [u.id]);
    await addMembers(app, t, g, [lead.id], 'manager');
    const led = await check(app, t, agent, lead.id);
    assert.equal(led.edit, true);
    assert.match(led.reasons.join(' '), /manager of group Ops/);
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    const suspended = await check(app, t, agent, u.id);
    assert.equal(suspended.use, false);
    assert.deepEqual(suspended.reasons, ['the user is suspended: no access to any agent']);
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'active' }).expect(200);
    assert.equal((await check(app, t, agent, u.id)).use, true);
    await request(app).patch(`/api/v1/groups/${g}`).set(t.admin).send({ status: 'archived' }).expect(200);
    assert.equal((await check(app, t, agent, u.id)).use, false);
    const invited = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'later@example.com', role: 'member' })
      .expect(201);
    assert.equal((await check(app, t, agent, invited.body.user.id)).use, false);
    await request(app).delete(`/api/v1/users/${u.id}`).set(t.admin).expect(204);
    const gone = await check(app, t, agent, u.id);
    assert.equal(gone.use, false);
    assert.deepEqual(gone.reasons, ['the user does not exist or was deleted']);
    await request(app).get(`/api/v1/access/agents/nope/users/${lead.id}`).set(t.admin).expect(404);
  });

  it('batch checks answer up to 1,000 tuples in order; bad batches are refused', async () => {
    const g = await createGroup(app, t, 'Batch');
    const agent = await createAgent(app, t, 'Batch Agent');
    await grant(app, t, agent, { groupId: g, permission: 'view_use' });
    const inside = await buildUser(app, t);
    const outside = await buildUser(app, t);
    await addMembers(app, t, g, [inside.id]);
    const checks = Array.from({ length: 1000 }, (_, i) => ({
      userId: i % 2 ? outside.id : inside.id,
      agentId: agent,
      action: i % 3 === 0 ? 'edit' : 'use',
    }));
    const res = await request(app).post('/api/v1/access/checks').set(t.admin).send({ checks }).expect(200);
    assert.equal(res.body.results.length, 1000);
    res.body.results.forEach((r: { allowed: boolean; userId: string; action: string }, i: number) => {
      assert.equal(r.userId, checks[i]!.userId);
      assert.equal(r.allowed, checks[i]!.userId === inside.id && checks[i]!.action === 'use', `result ${i}`);
    });
    await request(app)
      .post('/api/v1/access/checks')
      .set(t.admin)
      .send({ checks: [...checks, checks[0]] })
      .expect(400);
    const bad = await request(app)
      .post('/api/v1/access/checks')
      .set(t.admin)
      .send({ checks: [{ userId: inside.id, agentId: agent, action: 'fly' }] })
      .expect(400);
    assert.equal(bad.body.fields[0].path, 'body.checks.0.action');
  });

  it("lists a user's agents and an agent's users; members may ask only about themselves", async () => {
    const g = await createGroup(app, t, 'Listers');
    const a1 = await createAgent(app, t, 'Alpha');
    const a2 = await createAgent(app, t, 'Beta', 'organization');
    await createAgent(app, t, 'Gamma');
    await grant(app, t, a1, { groupId: g, permission: 'edit' });
    const u = await buildUser(app, t);
    await addMembers(app, t, g, [u.id]);
    const mine = await request(app).get(`/api/v1/users/${u.id}/agents`).set(t.admin).expect(200);
    const levels = Object.fromEntries(
      mine.body.items.map((i: { agent: { name: string }; level: string }) => [i.agent.name, i.level]),
    );
    assert.deepEqual(levels, { Alpha: 'edit', Beta: 'view_use' });
    const paged = await request(app).get(`/api/v1/users/${u.id}/agents`).query({ limit: 1 }).set(t.admin).expect(200);
    assert.equal(paged.body.items.length, 1);
    const rest = await request(app)
      .get(`/api/v1/users/${u.id}/agents`)
      .query({ limit: 1, cursor: paged.body.nextCursor })
      .set(t.admin)
      .expect(200);
    assert.equal(rest.body.items.length, 1);
    assert.notEqual(rest.body.items[0].agent.id, paged.body.items[0].agent.id);
    const nobody = await buildUser(app, t);
    const theirs = await request(app).get(`/api/v1/users/${nobody.id}/agents`).set(t.admin).expect(200);
    assert.deepEqual(
      theirs.body.items.map((i: { agent: { id: string } }) => i.agent.id),
      [a2],
    );

    const access = await request(app).get(`/api/v1/agents/${a1}/access`).set(t.admin).expect(200);
    assert.equal(access.body.organizationWide, false);
    assert.deepEqual(
      access.body.grants.map((x: { subject: { name: string }; permission: string; inForce: boolean }) => [
        x.subject.name,
        x.permission,
        x.inForce,
      ]),
      [['Listers', 'edit', true]],
    );
    assert.deepEqual(
      access.body.users.map((x: { userId: string; level: string }) => [x.userId, x.level]),
      [[u.id, 'edit']],
    );

    await request(app).get(`/api/v1/access/agents/${a1}/users/${u.id}`).set(u.auth).expect(200);
    await request(app).get(`/api/v1/access/agents/${a1}/users/${nobody.id}`).set(u.auth).expect(403);
    await request(app).get(`/api/v1/agents/${a1}/access`).set(u.auth).expect(403);
    const other = await buildTenant();
    await request(app).get(`/api/v1/access/agents/${a1}/users/${u.id}`).set(other.admin).expect(404);
  });
});
