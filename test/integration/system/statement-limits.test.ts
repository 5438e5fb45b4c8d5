import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import type { TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { GROUP, USER, patchBody, scimClient } from '../../support/scim.js';
import { createAgent, createGroup, idpGroup } from '../../support/workspace.js';

/**
 * Requests whose statements would pass a database's limits if written as one: SQLite refuses an
 * INSERT of more than 500 rows ("too many terms in compound SELECT") and more than 32,766 bound
 * values ("too many SQL variables"). Each must succeed on both dialects.
 */
describe('statement limits: large requests succeed on every dialect', () => {
  const app = useApp();
  const t = useTenant();

  const count = async (table: string, where: Record<string, unknown>) => {
    const db = await testDb();
    const r = await db
      .knex(table)
      .where({ tenant_id: t.tenant.id, ...where })
      .count({ n: '*' })
      .first();
    return Number(r!.n);
  };

  it('POST /Users whose attributes make more than 500 index rows', async () => {
    // 20 values per attribute stays under any sensible cap on values; their sub-attributes make
    // well over 500 index rows.
    const n = 20;
    const each = <T>(f: (i: number) => T) => Array.from({ length: n }, (_, i) => f(i));
    const user = {
      schemas: [USER],
      userName: 'many.values@example.com',
      emails: each((i) => ({ value: `m${i}@example.com`, type: 'work', display: `Mail ${i}`, primary: i === 0 })),
      phoneNumbers: each((i) => ({
        value: `+1 555 01${String(i).padStart(2, '0')}`,
        type: 'work',
        display: `Phone ${i}`,
      })),
      ims: each((i) => ({ value: `im${i}`, type: 'xmpp', display: `IM ${i}` })),
      photos: each((i) => ({ value: `https://photos.example.com/${i}.jpg`, type: 'photo', display: `Photo ${i}` })),
      addresses: each((i) => ({
        formatted: `${i} Main St, Springfield`,
        streetAddress: `${i} Main St`,
        locality: 'Springfield',
        region: 'IL',
        postalCode: `6270${i % 10}`,
        country: 'US',
        type: 'work',
      })),
      entitlements: each((i) => ({ value: `ent-${i}`, type: 'license', display: `Entitlement ${i}` })),
      roles: each((i) => ({ value: `role-${i}`, type: 'job', display: `Role ${i}` })),
    };
    const created = await scimClient(app, t.scimToken).post('/Users', user).expect(201);
    const rows = await count('user_attrs', { user_id: created.body.id });
    assert.ok(rows > 500, `the request made only ${rows} index rows`);
    const found = await scimClient(app, t.scimToken)
      .get(`/Users?filter=${encodeURIComponent('emails.value eq "m19@example.com"')}`)
      .expect(200);
    assert.deepEqual(
      found.body.Resources.map((r: { id: string }) => r.id),
      [created.body.id],
    );
    // PUT rewrites every index row.
    await scimClient(app, t.scimToken)
      .put(`/Users/${created.body.id}`, { ...user, displayName: 'Many Values' })
      .expect(200);
    assert.equal(await count('user_attrs', { user_id: created.body.id }), rows + 1);
  });

  it('adds 1,000 members to a local group in one request, each audited', async () => {
    const db = await testDb();
    const ids = await seedUsers(db.knex, t, 1000);
    const g = await createGroup(app, t, 'Everyone');
    const res = await request(app).post(`/api/v1/groups/${g}/members`).set(t.admin).send({ userIds: ids }).expect(200);
    assert.equal(res.body.added.length, 1000);
    assert.equal(await count('group_members', { group_id: g }), 1000);
    assert.equal(await count('audit_events', { event: 'group.member_added' }), 1000);
    const removed = await request(app)
      .post(`/api/v1/groups/${g}/members/remove`)
      .set(t.admin)
      .send({ userIds: ids })
      .expect(200);
    assert.equal(removed.body.removed.length, 1000);
    assert.equal(await count('group_members', { group_id: g }), 0);
    assert.equal(await count('audit_events', { event: 'group.member_removed' }), 1000);
  });

  it('POST /api/v1/imports/agent-grants with 600 rows', async () => {
    const agent = await createAgent(app, t, 'Assistant');
    const group = await createGroup(app, t, 'Sales');
    const day = (i: number) => new Date(Date.UTC(2024, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
    const lines = Array.from({ length: 600 }, (_, i) => `${agent},${group},VIEW_AND_USE,${day(i)},`);
    const res = await request(app)
      .post('/api/v1/imports/agent-grants')
      .set(t.admin)
      .set('Content-Type', 'text/csv')
      .send(['AgentId,GroupId,Permission,StartDate,EndDate', ...lines].join('\n'))
      .expect(200);
    assert.equal(res.body.added, 600);
    assert.equal(await count('agent_grants', { agent_id: agent }), 600);
    assert.equal(await count('audit_events', { event: 'agent.grant_created' }), 600);
  });

  it('removes 1,000 members of a 40,000-member IdP group by PATCH; removing all of them at once is refused', async function () {
    this.timeout(120_000);
    const db = await testDb();
    const group = await idpGroup(app, t, 'All Staff');
    const ids = await seedUsers(db.knex, t, 40_000);
    const now = Date.now();
    for (let i = 0; i < ids.length; i += 500) {
      await db.knex('idp_group_members').insert(
        ids.slice(i, i + 500).map((id) => ({
          tenant_id: t.tenant.id,
          group_id: group,
          member_id: id,
          member_type: 'User',
          created_at: now,
        })),
      );
    }
    // Removing all members costs the group's size, not the request's: refused past 1,000 (README).
    await scimClient(app, t.scimToken)
      .patch(`/Groups/${group}`, patchBody({ op: 'remove', path: 'members' }))
      .expect(400);
    assert.equal(await count('idp_group_members', { group_id: group }), 40_000);
    // By value, a page of 1,000 (more than one IN list on SQLite) goes in chunked statements.
    await scimClient(app, t.scimToken)
      .patch(
        `/Groups/${group}`,
        patchBody({ op: 'remove', path: 'members', value: ids.slice(0, 1000).map((value) => ({ value })) }),
      )
      .expect((r) => assert.ok(r.status === 200 || r.status === 204, `${r.status} ${JSON.stringify(r.body)}`));
    assert.equal(await count('idp_group_members', { group_id: group }), 39_000);
    const after = await scimClient(app, t.scimToken).get(`/Groups/${group}?excludedAttributes=members`).expect(200);
    assert.deepEqual(after.body.schemas, [GROUP]);
  });

  /** One user who is a member of 33,000 groups, the last of which is granted an agent. */
  async function userInManyGroups() {
    const db = await testDb();
    const [userId] = await seedUsers(db.knex, t, 1);
    const now = Date.now();
    const groups = Array.from({ length: 33_000 }, (_, i) => ({
      tenant_id: t.tenant.id,
      id: randomUUID(),
      name: `g${i}`,
      name_key: `g${i}`,
      status: 'active',
      created_at: now,
      updated_at: now,
    }));
    for (let i = 0; i < groups.length; i += 500) {
      await db.knex('local_groups').insert(groups.slice(i, i + 500));
      await db.knex('group_members').insert(
        groups.slice(i, i + 500).map((g) => ({
          tenant_id: t.tenant.id,
          group_id: g.id,
          user_id: userId!,
          role: 'member',
          rule_id: '',
          idp_group_id: '',
          created_at: now,
        })),
      );
    }
    const agent = await createAgent(app, t, 'Deep Assistant');
    await request(app)
      .post(`/api/v1/agents/${agent}/grants`)
      .set(t.admin)
      .send({ groupId: groups[32_999]!.id, permission: 'view_use' })
      .expect(201);
    return { userId: userId!, agent };
  }

  it('the access-matrix report for a user in 33,000 groups', async function () {
    this.timeout(120_000);
    const { userId, agent } = await userInManyGroups();
    const res = await request(app)
      .get('/api/v1/reports/access-matrix')
      .query({ format: 'csv' })
      .set(t.admin)
      .buffer(true)
      .parse((r, done) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => done(null, text));
      });
    assert.equal(res.status, 200);
    assert.ok(
      (res.body as string).split('\n').some((line) => line.startsWith(`${userId},`) && line.includes(agent)),
      res.body as string,
    );
  });

  it("a user in 33,000 groups: GET /users/{id}/agents and the agent's access list", async function () {
    this.timeout(120_000);
    const { userId, agent } = await userInManyGroups();
    const mine = await request(app).get(`/api/v1/users/${userId}/agents`).set(t.admin).expect(200);
    assert.deepEqual(
      mine.body.items.map((i: { agent: { id: string }; level: string }) => [i.agent.id, i.level]),
      [[agent, 'view_use']],
    );
    const access = await request(app).get(`/api/v1/agents/${agent}/access`).set(t.admin).expect(200);
    assert.deepEqual(
      access.body.users.map((u: { userId: string }) => u.userId),
      [userId],
    );
  });
});

/** Users written straight into the tables (the API would take minutes for 40,000). */
async function seedUsers(knex: import('knex').Knex, t: TestTenant, n: number): Promise<string[]> {
  const now = Date.now();
  const ids = Array.from({ length: n }, () => randomUUID());
  const rows = ids.map((id, i) => {
    const userName = `seed${i}-${id.slice(0, 8)}@example.com`;
    return {
      tenant_id: t.tenant.id,
      id,
      user_name: userName,
      user_name_key: userName,
      email: userName,
      email_key: userName,
      active: true,
      status: 'active',
      role: 'member',
      source: 'scim',
      scim_doc: JSON.stringify({
        schemas: [USER],
        userName,
        emails: [{ value: userName, primary: true }],
        active: true,
      }),
      version: 1,
      created_at: now,
      updated_at: now,
    };
  });
  // 14 columns: 500 rows stay under SQLite's compound-SELECT limit.
  for (let i = 0; i < rows.length; i += 500) await knex('users').insert(rows.slice(i, i + 500));
  return ids;
}
