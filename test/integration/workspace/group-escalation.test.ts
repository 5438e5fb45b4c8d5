import assert from 'node:assert/strict';
import request from 'supertest';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser, type TestUser } from '../../support/management.js';
import { addMembers, check, createAgent, createGroup, grant } from '../../support/workspace.js';

/**
 * Review F5: group membership, managers and parents hand on what a group carries. A member
 * holding manage on Account › Users (a help-desk role) must not reach an agent through them.
 */
describe('group changes never grant beyond the caller’s own rights', () => {
  const app = useApp();
  const t = useTenant();
  let agent: string;
  let engineering: string;
  let helpdesk: TestUser;
  let friend: TestUser;
  beforeEach(async () => {
    agent = await createAgent(app, t, 'Deploy Bot');
    engineering = await createGroup(app, t, 'Engineering');
    await grant(app, t, agent, { groupId: engineering, permission: 'view_use' });
    helpdesk = await buildUser(app, t, { areas: { account: 'manage' } });
    friend = await buildUser(app, t);
  });

  const api = () => request(app);
  const memberIds = async (g: string) =>
    (
      (await api().get(`/api/v1/groups/${g}/members`).set(t.admin).expect(200)).body.items as {
        userId: string;
        role: string;
      }[]
    )
      .map((m) => `${m.userId}:${m.role}`)
      .sort();

  /** A refusal that says why, names the agent, and leaves the caller and the friend without it. */
  async function refused(res: request.Response, what: RegExp) {
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.code, 'beyond_own_permissions');
    assert.match(res.body.detail, what);
    assert.match(res.body.detail, /"Deploy Bot".*only admins may grant/);
    assert.deepEqual(res.body.agents, [{ id: agent, name: 'Deploy Bot' }]);
    for (const u of [helpdesk, friend]) assert.equal((await check(app, t, agent, u.id)).level, 'none');
  }

  it('refuses a user manager adding themselves or a friend, by id or email, as member or manager', async () => {
    for (const body of [
      { userIds: [helpdesk.id] },
      { userIds: [helpdesk.id], role: 'manager' },
      { emails: [friend.email.toUpperCase()], role: 'member' },
      { userIds: [friend.id], emails: [helpdesk.email], role: 'manager' },
    ]) {
      await refused(
        await api().post(`/api/v1/groups/${engineering}/members`).set(helpdesk.auth).send(body),
        /add members to group "Engineering"|make anyone a manager of group "Engineering"/,
      );
    }
    assert.deepEqual(await memberIds(engineering), []);
  });

  it('refuses making an existing member a manager (edit on the agent)', async () => {
    await addMembers(app, t, engineering, [helpdesk.id, friend.id]);
    const res = await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [helpdesk.id, friend.id], role: 'manager' });
    assert.equal(res.status, 403);
    assert.match(res.body.detail, /make anyone a manager of group "Engineering"/);
    assert.deepEqual(await memberIds(engineering), [`${friend.id}:member`, `${helpdesk.id}:member`].sort());
    assert.equal((await check(app, t, agent, helpdesk.id)).level, 'view_use');
  });

  it('counts what ancestors carry: a child group of a granted group is refused too', async () => {
    const child = await createGroup(app, t, 'Platform', engineering);
    const res = await api()
      .post(`/api/v1/groups/${child}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [helpdesk.id], role: 'manager' });
    await refused(res, /make anyone a manager of group "Platform"/);
    assert.deepEqual(await memberIds(child), []);
  });

  it('refuses moving a group under a granted one, and creating a group there', async () => {
    const mine = (await api().post('/api/v1/groups').set(helpdesk.auth).send({ name: 'Help desk' }).expect(201)).body
      .id;
    // A group that carries nothing is the user manager's to fill: nothing is granted.
    await api()
      .post(`/api/v1/groups/${mine}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [helpdesk.id, friend.id], role: 'manager' })
      .expect(200);
    await refused(
      await api().patch(`/api/v1/groups/${mine}`).set(helpdesk.auth).send({ parentId: engineering }),
      /move group "Help desk" there/,
    );
    assert.equal((await api().get(`/api/v1/groups/${mine}`).set(t.admin).expect(200)).body.parentId, null);
    // Moving a group whose child holds the members moves them too.
    const parent = (await api().post('/api/v1/groups').set(helpdesk.auth).send({ name: 'Outer' }).expect(201)).body.id;
    await api().patch(`/api/v1/groups/${mine}`).set(helpdesk.auth).send({ parentId: parent }).expect(200);
    await refused(
      await api().patch(`/api/v1/groups/${parent}`).set(helpdesk.auth).send({ parentId: engineering }),
      /move group "Outer" there/,
    );

    await refused(
      await api().post('/api/v1/groups').set(helpdesk.auth).send({ name: 'Sneaky', parentId: engineering }),
      /create a group there/,
    );
    assert.equal(
      (await api().get('/api/v1/groups').query({ name: 'Sneaky' }).set(t.admin).expect(200)).body.items.length,
      0,
    );
    // An admin may do all of it.
    await api().patch(`/api/v1/groups/${parent}`).set(t.admin).send({ parentId: engineering }).expect(200);
    assert.equal((await check(app, t, agent, friend.id)).level, 'edit');
  });

  it('allows a move that hands on nothing new: between siblings of a granted parent, or to the top level', async () => {
    const a = await createGroup(app, t, 'A', engineering);
    const b = await createGroup(app, t, 'B', engineering);
    const g = await createGroup(app, t, 'G', a);
    await api().patch(`/api/v1/groups/${g}`).set(helpdesk.auth).send({ parentId: b }).expect(200);
    await api().patch(`/api/v1/groups/${g}`).set(helpdesk.auth).send({ parentId: null }).expect(200);
    await refused(
      await api().patch(`/api/v1/groups/${g}`).set(helpdesk.auth).send({ parentId: a }),
      /move group "G" there/,
    );
  });

  it('refuses reactivating an archived group that carries a grant', async () => {
    await addMembers(app, t, engineering, [friend.id]);
    await api().patch(`/api/v1/groups/${engineering}`).set(helpdesk.auth).send({ status: 'archived' }).expect(200);
    await refused(
      await api().patch(`/api/v1/groups/${engineering}`).set(helpdesk.auth).send({ status: 'active' }),
      /reactivate group "Engineering"/,
    );
    assert.equal((await api().get(`/api/v1/groups/${engineering}`).set(t.admin).expect(200)).body.status, 'archived');
    await api().patch(`/api/v1/groups/${engineering}`).set(t.admin).send({ status: 'active' }).expect(200);
  });

  it('counts data-source restrictions and grants not yet in force', async () => {
    const docs = await createGroup(app, t, 'Docs readers');
    const open = await createAgent(app, t, 'Handbook', 'organization');
    await api()
      .post(`/api/v1/agents/${open}/data-sources`)
      .set(t.admin)
      .send({ name: 'HR files', access: 'groups', groupIds: [docs] })
      .expect(201);
    const res = await api()
      .post(`/api/v1/groups/${docs}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [helpdesk.id] })
      .expect(403);
    assert.deepEqual(res.body.agents, [{ id: open, name: 'Handbook' }]);
    assert.deepEqual((await check(app, t, open, helpdesk.id)).dataSources, []);

    const later = await createGroup(app, t, 'Next year');
    await grant(app, t, agent, { groupId: later, permission: 'edit', startDate: '2099-01-01' });
    await api()
      .post(`/api/v1/groups/${later}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [helpdesk.id] })
      .expect(403);
  });

  it("lets a group's own managers add members (as members only), and anyone who manages membership remove them", async () => {
    const boss = await buildUser(app, t);
    await addMembers(app, t, engineering, [boss.id], 'manager');
    await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(boss.auth)
      .send({ userIds: [friend.id] })
      .expect(200);
    assert.equal((await check(app, t, agent, friend.id)).level, 'view_use');
    const promote = await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(boss.auth)
      .send({ userIds: [friend.id], role: 'manager' })
      .expect(403);
    assert.equal(promote.body.code, 'group_manager_limit');

    // A user manager who manages the group adds members as its manager, but makes no managers.
    await addMembers(app, t, engineering, [helpdesk.id], 'manager');
    const newcomer = await buildUser(app, t);
    await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [newcomer.id] })
      .expect(200);
    const res = await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [newcomer.id], role: 'manager' });
    assert.equal(res.status, 403);
    assert.equal(res.body.code, 'beyond_own_permissions');

    // Taking access away is no grant: demoting and removing stay with user managers.
    await api()
      .post(`/api/v1/groups/${engineering}/members`)
      .set(helpdesk.auth)
      .send({ userIds: [boss.id], role: 'member' })
      .expect(200);
    await api()
      .post(`/api/v1/groups/${engineering}/members/remove`)
      .set(helpdesk.auth)
      .send({ userIds: [friend.id, boss.id] })
      .expect(200);
    await api().delete(`/api/v1/groups/${engineering}/members/${newcomer.id}`).set(helpdesk.auth).expect(204);
    assert.deepEqual(await memberIds(engineering), [`${helpdesk.id}:manager`]);
  });

  it('refuses a user manager importing group members from CSV', async () => {
    const res = await api()
      .post('/api/v1/imports/group-members')
      .set(helpdesk.auth)
      .set('Content-Type', 'text/csv')
      .send(`Name,Email,Group\nMe,${helpdesk.email},Engineering\n`);
    assert.equal(res.status, 403);
    assert.deepEqual(await memberIds(engineering), []);
  });
});
