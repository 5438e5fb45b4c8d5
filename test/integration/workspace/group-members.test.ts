import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import type { TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser, type TestUser } from '../../support/management.js';
import { addMembers, createAgent, createGroup } from '../../support/workspace.js';
import { liveRuleRow } from '../../support/mapping.js';

/** A membership row as a mapping rule writes it, with provenance. */
async function derivedMembership(
  t: TestTenant,
  groupId: string,
  userId: string,
  role: 'member' | 'manager',
  ruleId = 'rule-1',
) {
  const db = await testDb();
  await liveRuleRow(t, ruleId);
  await db.knex('group_members').insert({
    tenant_id: t.tenant.id,
    group_id: groupId,
    user_id: userId,
    role,
    rule_id: ruleId,
    rule_version: 1,
    idp_group_id: 'idp-1',
    created_at: Date.now(),
  });
}

interface Member {
  userId: string;
  email: string;
  role: string;
  source: string;
  memberships: { source: string; role: string; ruleId: string | null }[];
}

describe('management API: local group members', () => {
  const app = useApp();
  const t = useTenant();

  const api = () => request(app);
  const members = async (groupId: string, auth = t.admin) =>
    (await api().get(`/api/v1/groups/${groupId}/members`).set(auth).expect(200)).body.items as Member[];
  const users = (n: number) => Promise.all(Array.from({ length: n }, () => buildUser(app, t)));

  it('adds users by id and by email in bulk, updates roles of members already there, one audit event per user', async () => {
    const g = await createGroup(app, t, 'Support Team');
    const [a, b, c] = await users(3);
    const first = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [a!.id, a!.id], emails: [b!.email.toUpperCase()], role: 'manager' })
      .expect(200);
    assert.deepEqual(first.body, {
      added: [
        { userId: a!.id, email: a!.email, role: 'manager' },
        { userId: b!.id, email: b!.email, role: 'manager' },
      ],
      updated: [],
      unchanged: [],
    });
    const second = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [a!.id, c!.id], emails: [b!.email], role: 'member' })
      .expect(200);
    assert.deepEqual(second.body.added, [{ userId: c!.id, email: c!.email, role: 'member' }]);
    assert.deepEqual(
      second.body.updated.map((u: { userId: string; role: string; previousRole: string }) => [
        u.userId,
        u.previousRole,
        u.role,
      ]),
      [
        [a!.id, 'manager', 'member'],
        [b!.id, 'manager', 'member'],
      ],
    );
    // Without a role, members already there keep theirs.
    await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [a!.id] })
      .expect(200);
    await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [b!.id], role: 'manager' })
      .expect(200);
    const keep = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [b!.id] })
      .expect(200);
    assert.deepEqual(keep.body.unchanged, [{ userId: b!.id, email: b!.email, role: 'manager' }]);

    const list = await members(g);
    assert.deepEqual(
      list.map((m) => [m.userId, m.role, m.source]).sort(),
      [
        [a!.id, 'member', 'manual'],
        [b!.id, 'manager', 'manual'],
        [c!.id, 'member', 'manual'],
      ].sort(),
    );
    assert.equal((await api().get(`/api/v1/groups/${g}`).set(t.admin).expect(200)).body.memberCount, 3);

    const added = await auditEvents(app, t, 'group.member_added');
    assert.equal(added.length, 3);
    const forA = added.find((e) => (e.after as { userId: string }).userId === a!.id)!;
    assert.deepEqual(forA.entity, { type: 'group', id: g, name: 'Support Team' });
    assert.equal(forA.before, null);
    assert.deepEqual(forA.after, { userId: a!.id, email: a!.email, role: 'manager' });
    const roles = await auditEvents(app, t, 'group.member_role_changed');
    assert.equal(roles.length, 3);
    assert.deepEqual(roles.at(-1)!.before, { userId: a!.id, email: a!.email, role: 'manager' });
    assert.deepEqual(roles.at(-1)!.after, { userId: a!.id, email: a!.email, role: 'member' });
  });

  it('refuses unknown ids and emails (400, each listed) and applies nothing', async () => {
    const g = await createGroup(app, t, 'Strict');
    const [a] = await users(1);
    const res = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [a!.id, 'ghost-1'], emails: ['nobody@example.com'], role: 'member' })
      .expect(400);
    assert.equal(res.body.code, 'unknown_users');
    assert.deepEqual(res.body.unknownUserIds, ['ghost-1']);
    assert.deepEqual(res.body.unknownEmails, ['nobody@example.com']);
    assert.deepEqual(
      res.body.fields.map((f: { path: string }) => f.path),
      ['body.userIds.1', 'body.emails.0'],
    );
    assert.deepEqual(await members(g), []);
    const removal = await api()
      .post(`/api/v1/groups/${g}/members/remove`)
      .set(t.admin)
      .send({ userIds: ['ghost-2'] })
      .expect(400);
    assert.deepEqual(removal.body.unknownUserIds, ['ghost-2']);

    const none = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [], role: 'member' })
      .expect(400);
    assert.equal(none.body.code, 'no_users');
    const tooMany = Array.from({ length: 600 }, (_, i) => `id-${i}`);
    const over = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: tooMany, emails: tooMany.map((x) => `${x}@example.com`) })
      .expect(400);
    assert.equal(over.body.code, 'too_many_users');
    const schema = await api()
      .post(`/api/v1/groups/${g}/members`)
      .set(t.admin)
      .send({ userIds: [a!.id], role: 'owner' })
      .expect(400);
    assert.deepEqual(schema.body.fields, [{ path: 'body.role', message: 'must be one of member, manager' }]);
    await api()
      .post(`/api/v1/groups/nope/members`)
      .set(t.admin)
      .send({ userIds: [a!.id] })
      .expect(404);
  });

  it('removes manual memberships only: what a mapping rule gives stays', async () => {
    const g = await createGroup(app, t, 'Mixed');
    const [manualOnly, both, ruleOnly, outsider] = await users(4);
    await addMembers(app, t, g, [manualOnly!.id, both!.id]);
    await derivedMembership(t, g, both!.id, 'manager');
    await derivedMembership(t, g, ruleOnly!.id, 'member');
    const before = await members(g);
    const b = before.find((m) => m.userId === both!.id)!;
    assert.equal(b.role, 'manager');
    assert.equal(b.source, 'manual');
    assert.deepEqual(
      b.memberships.map((m) => [m.source, m.role, m.ruleId]),
      [
        ['manual', 'member', null],
        ['rule', 'manager', 'rule-1'],
      ],
    );
    assert.equal(before.find((m) => m.userId === ruleOnly!.id)!.source, 'rule');

    const res = await api()
      .post(`/api/v1/groups/${g}/members/remove`)
      .set(t.admin)
      .send({ userIds: [manualOnly!.id, both!.id, ruleOnly!.id], emails: [outsider!.email] })
      .expect(200);
    assert.deepEqual(res.body.removed, [
      { userId: manualOnly!.id, email: manualOnly!.email, role: 'member', remainingRole: null },
      { userId: both!.id, email: both!.email, role: 'member', remainingRole: 'manager' },
    ]);
    assert.deepEqual(res.body.notRemoved, [
      { userId: ruleOnly!.id, email: ruleOnly!.email, reason: 'rule_membership' },
      { userId: outsider!.id, email: outsider!.email, reason: 'not_a_member' },
    ]);
    const after = await members(g);
    assert.deepEqual(
      after.map((m) => [m.userId, m.source, m.role]).sort(),
      [
        [both!.id, 'rule', 'manager'],
        [ruleOnly!.id, 'rule', 'member'],
      ].sort(),
    );

    const removed = await auditEvents(app, t, 'group.member_removed');
    assert.equal(removed.length, 2);
    const forBoth = removed.find((e) => (e.before as { userId: string }).userId === both!.id)!;
    assert.deepEqual(forBoth.before, { userId: both!.id, email: both!.email, role: 'member' });
    assert.deepEqual(forBoth.after, { userId: both!.id, email: both!.email, role: 'manager' });
  });

  it('removes one member by id: 204, then 404 not_a_member; 409 when only a rule gives the membership', async () => {
    const g = await createGroup(app, t, 'Single');
    const [u, ruled] = await users(2);
    await addMembers(app, t, g, [u!.id]);
    await derivedMembership(t, g, ruled!.id, 'member');
    await api().delete(`/api/v1/groups/${g}/members/${u!.id}`).set(t.admin).expect(204);
    const again = await api().delete(`/api/v1/groups/${g}/members/${u!.id}`).set(t.admin).expect(404);
    assert.equal(again.body.code, 'not_a_member');
    assert.equal(
      (await api().delete(`/api/v1/groups/${g}/members/nobody`).set(t.admin).expect(404)).body.code,
      'user_not_found',
    );
    const rule = await api().delete(`/api/v1/groups/${g}/members/${ruled!.id}`).set(t.admin).expect(409);
    assert.equal(rule.body.code, 'rule_membership');
    assert.deepEqual(
      (await members(g)).map((m) => m.userId),
      [ruled!.id],
    );
    const [event] = await auditEvents(app, t, 'group.member_removed');
    assert.deepEqual(event!.after, { userId: u!.id, email: u!.email, role: null });
    // Another method on the bulk-remove path is not a user id.
    await api().delete(`/api/v1/groups/${g}/members/remove`).set(t.admin).expect(405);
  });

  it('pages members by cursor, one entry per user', async () => {
    const g = await createGroup(app, t, 'Paged');
    const people = await users(5);
    await addMembers(
      app,
      t,
      g,
      people.map((p) => p.id),
    );
    await derivedMembership(t, g, people[0]!.id, 'member');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: request.Response = await api()
        .get(`/api/v1/groups/${g}/members`)
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .set(t.admin)
        .expect(200);
      seen.push(...page.body.items.map((m: Member) => m.userId));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, people.map((p) => p.id).sort());
  });

  describe("a group's managers", () => {
    let g: string;
    let boss: TestUser;
    let deputy: TestUser;
    let staff: TestUser;
    let newcomer: TestUser;
    beforeEach(async () => {
      g = await createGroup(app, t, 'Team');
      [boss, deputy, staff, newcomer] = (await users(4)) as [TestUser, TestUser, TestUser, TestUser];
      await addMembers(app, t, g, [boss.id, deputy.id], 'manager');
      await addMembers(app, t, g, [staff.id], 'member');
    });

    it('read their group and add and remove its members', async () => {
      await api().get(`/api/v1/groups/${g}`).set(boss.auth).expect(200);
      assert.equal((await members(g, boss.auth)).length, 3);
      await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(boss.auth)
        .send({ emails: [newcomer.email] })
        .expect(200);
      await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(boss.auth)
        .send({ userIds: [staff.id], role: 'member' })
        .expect(200);
      await api().delete(`/api/v1/groups/${g}/members/${newcomer.id}`).set(boss.auth).expect(204);
      await api()
        .post(`/api/v1/groups/${g}/members/remove`)
        .set(boss.auth)
        .send({ userIds: [staff.id] })
        .expect(200);
      const [event] = await auditEvents(app, t, 'group.member_removed');
      assert.deepEqual(event!.actor, { type: 'user', id: boss.id, display: boss.email });
    });

    it('cannot make anyone a manager, nor demote or remove a manager', async () => {
      const promote = await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(boss.auth)
        .send({ userIds: [staff.id], role: 'manager' })
        .expect(403);
      assert.equal(promote.body.code, 'group_manager_limit');
      const demote = await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(boss.auth)
        .send({ userIds: [deputy.id], role: 'member' })
        .expect(403);
      assert.equal(demote.body.code, 'group_manager_limit');
      await api().delete(`/api/v1/groups/${g}/members/${deputy.id}`).set(boss.auth).expect(403);
      const bulk = await api()
        .post(`/api/v1/groups/${g}/members/remove`)
        .set(boss.auth)
        .send({ userIds: [staff.id, deputy.id] })
        .expect(403);
      assert.equal(bulk.body.code, 'group_manager_limit');
      assert.deepEqual((await members(g)).map((m) => m.userId).sort(), [boss.id, deputy.id, staff.id].sort());
    });

    it('cannot rename, move, archive or delete the group, nor grant it anything', async () => {
      for (const body of [{ name: 'Mine now' }, { status: 'archived' }, { parentId: null }]) {
        await api().patch(`/api/v1/groups/${g}`).set(boss.auth).send(body).expect(403);
      }
      await api().delete(`/api/v1/groups/${g}`).set(boss.auth).expect(403);
      await api().get('/api/v1/groups').set(boss.auth).expect(403);
      const agent = await createAgent(app, t, 'Agent');
      await api()
        .post(`/api/v1/agents/${agent}/grants`)
        .set(boss.auth)
        .send({ groupId: g, permission: 'edit' })
        .expect(403);
    });

    it('have no powers over another group, and none once their group is archived', async () => {
      const other = await createGroup(app, t, 'Other');
      await api().get(`/api/v1/groups/${other}`).set(boss.auth).expect(403);
      await api()
        .post(`/api/v1/groups/${other}/members`)
        .set(boss.auth)
        .send({ userIds: [newcomer.id] })
        .expect(403);
      // Plain members have no powers over their own group.
      await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(staff.auth)
        .send({ userIds: [newcomer.id] })
        .expect(403);
      await api().get(`/api/v1/groups/${g}/members`).set(staff.auth).expect(403);
      await api().patch(`/api/v1/groups/${g}`).set(t.admin).send({ status: 'archived' }).expect(200);
      const archived = await api()
        .post(`/api/v1/groups/${g}/members`)
        .set(boss.auth)
        .send({ userIds: [newcomer.id] })
        .expect(403);
      assert.equal(archived.body.code, 'not_allowed');
      // Admins still tidy an archived group's members.
      await api()
        .post(`/api/v1/groups/${g}/members/remove`)
        .set(t.admin)
        .send({ userIds: [staff.id] })
        .expect(200);
    });

    it('include managers by mapping rule', async () => {
      await derivedMembership(t, g, newcomer.id, 'manager');
      await api()
        .post(`/api/v1/groups/${g}/members/remove`)
        .set(newcomer.auth)
        .send({ userIds: [staff.id] })
        .expect(200);
    });
  });
});
