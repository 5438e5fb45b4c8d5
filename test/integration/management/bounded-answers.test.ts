import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { HOLDERS_SAMPLE } from '../../../src/provisioning/role-templates.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { buildUser, templateId } from '../../support/management.js';
import { GROUP, oktaUser, scimClient, USER } from '../../support/scim.js';
import { addMembers, check, createAgent, createGroup, grant } from '../../support/workspace.js';

let seq = 0;

/** Active users over SCIM, cheaply: no key of their own. */
async function users(app: Express, t: TestTenant, n: number, patch: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const created = await scimClient(app, t.scimToken)
      .post('/Users', oktaUser(`bounded${++seq}-${Date.now()}@example.com`, { externalId: `bounded-${seq}` }))
      .expect(201);
    if (Object.keys(patch).length)
      await request(app).patch(`/api/v1/users/${created.body.id}`).set(t.admin).send(patch).expect(200);
    ids.push(created.body.id);
  }
  return ids.sort();
}

describe('answers bounded by the request, not the tenant', () => {
  const app = useApp();
  let t: TestTenant;
  before(async () => {
    t = await buildTenant();
  });

  it('refuses to delete a held role template with a count and a bounded sample of its users', async () => {
    const tpl = await templateId(app, t, 'Read-only reviewer');
    const holders = await users(app, t, HOLDERS_SAMPLE + 3, { templateId: tpl });
    const res = await request(app).delete(`/api/v1/role-templates/${tpl}`).set(t.admin).expect(409);
    assert.equal(res.body.code, 'template_in_use');
    assert.equal(res.body.usersCount, HOLDERS_SAMPLE + 3);
    assert.match(res.body.detail, new RegExp(`used by ${HOLDERS_SAMPLE + 3} user`));
    assert.deepEqual(
      res.body.users.map((u: { id: string }) => u.id),
      holders.slice(0, HOLDERS_SAMPLE),
    );
    const detached = await request(app).delete(`/api/v1/role-templates/${tpl}`).query({ detach: true }).set(t.admin);
    assert.equal(detached.status, 204);
  });

  it("pages an agent's access: grants and users by id, at most `limit` of each per page, all of them in the end", async () => {
    const agent = await createAgent(app, t, 'Paged agent');
    const parent = await createGroup(app, t, 'Paged parent');
    const child = await createGroup(app, t, 'Paged child', parent);
    const inChild = await users(app, t, 4);
    const direct = await users(app, t, 3);
    const outsider = await users(app, t, 2);
    await addMembers(app, t, child, inChild);
    await addMembers(app, t, parent, [outsider[0]!]);
    const grantIds = [await grant(app, t, agent, { groupId: parent, permission: 'view_use' })];
    for (const u of direct)
      grantIds.push(
        await grant(app, t, agent, { userId: u, permission: 'edit', endDate: '2000-01-01', timeZone: 'UTC' }),
      );
    // An ended grant reaches nobody: the direct holders are listed as grants, not as users.
    const reached = [...inChild, outsider[0]!].sort();

    const grants: { id: string; inForce: boolean }[] = [];
    const seen: { userId: string; level: string }[] = [];
    let cursor: string | undefined;
    let pages = 0;
    let firstCursor = '';
    do {
      const res = await request(app)
        .get(`/api/v1/agents/${agent}/access`)
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .set(t.admin)
        .expect(200);
      assert.ok(res.body.grants.length <= 2 && res.body.users.length <= 2, JSON.stringify(res.body));
      assert.equal(res.body.agent.id, agent);
      grants.push(...res.body.grants);
      seen.push(...res.body.users);
      cursor = res.body.nextCursor ?? undefined;
      firstCursor ||= cursor ?? '';
      assert.ok(++pages < 10, 'the cursor ends');
    } while (cursor);
    assert.deepEqual(
      grants.map((g) => g.id),
      [...grantIds].sort(),
    );
    assert.deepEqual(grants.filter((g) => g.inForce).length, 1);
    assert.deepEqual(
      seen.map((u) => u.userId),
      reached,
    );
    assert.ok(seen.every((u) => u.level === 'view_use'));

    const all = await request(app).get(`/api/v1/agents/${agent}/access`).set(t.admin).expect(200);
    assert.equal(all.body.nextCursor, null);
    assert.equal(all.body.users.length, reached.length);
    await request(app).get(`/api/v1/agents/${agent}/access`).query({ cursor: 'not-a-cursor' }).set(t.admin).expect(400);
    const other = await buildTenant();
    await request(app)
      .get(`/api/v1/agents/${agent}/access`)
      .query({ limit: 2, cursor: firstCursor })
      .set(other.admin)
      .expect(404);
    assert.ok(firstCursor);
  });

  it("reports and an agent's access read rule-derived grants a slice at a time, not all of the tenant's at once", async function () {
    this.timeout(120000);
    const big = await testApp({ BODY_LIMIT_BYTES: '400000' });
    const tb = await buildTenant();
    const n = 450;
    const ops: unknown[] = Array.from({ length: n }, (_, i) => ({
      method: 'POST',
      path: '/Users',
      bulkId: `u${i}`,
      data: {
        schemas: [USER],
        userName: `many${i}@example.com`,
        emails: [{ value: `many${i}@example.com`, primary: true }],
        active: true,
      },
    }));
    ops.push({
      method: 'POST',
      path: '/Groups',
      bulkId: 'all',
      data: {
        schemas: [GROUP],
        displayName: 'everyone',
        members: Array.from({ length: n }, (_, i) => ({ type: 'User', value: `bulkId:u${i}` })),
      },
    });
    const bulk = await scimClient(big, tb.scimToken)
      .post('/Bulk', { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: ops })
      .expect(200);
    assert.ok(bulk.body.Operations.every((o: { status: string }) => o.status === '201'));
    const agent = await createAgent(big, tb, 'For everyone');
    await request(big)
      .post('/api/v1/mapping-rules')
      .set(tb.admin)
      .send({
        name: 'everyone uses it',
        enabled: true,
        match: { source: 'any', field: 'displayName', operator: 'equals', value: 'everyone' },
        actions: { groups: [], agents: [{ agentId: agent, permission: 'view_use' }] },
      })
      .expect(201);

    // The most grant rows any one query returned while serving a request.
    const knex = (await testDb()).knex;
    let most = 0;
    const watch = (response: unknown, q: { sql?: string }) => {
      const rows = Array.isArray(response) && Array.isArray(response[0]) ? response[0] : response;
      // The candidate closure of /agents/{id}/access names users (10 × limit at most), not grants.
      if (/agent_grants/.test(q.sql ?? '') && !/WITH RECURSIVE down/.test(q.sql ?? '') && Array.isArray(rows))
        most = Math.max(most, rows.length);
    };
    knex.on('query-response', watch);
    try {
      const matrix = await request(big).get('/api/v1/reports/access-matrix').set(tb.admin).expect(200);
      assert.equal(
        matrix.body.items.filter(
          (r: { agentId: string; level: string }) => r.agentId === agent && r.level === 'view_use',
        ).length,
        n,
      );
      const cov = await request(big).get('/api/v1/reports/coverage').set(tb.admin).expect(200);
      assert.deepEqual(
        cov.body.items.filter((r: { section: string }) => r.section === 'user_without_access'),
        [],
      );
      assert.ok(most > 0 && most <= 200, `a report read ${most} grants in one query`);
      most = 0;
      const page = await request(big)
        .get(`/api/v1/agents/${agent}/access`)
        .query({ limit: 10 })
        .set(tb.admin)
        .expect(200);
      assert.equal(page.body.grants.length, 10);
      assert.equal(page.body.users.length, 10);
      assert.ok(most <= 11, `a page of 10 read ${most} grants in one query`);
    } finally {
      knex.removeListener('query-response', watch);
    }
  });

  it('the access matrix agrees with the access check for admins, creators, inherited, direct and ended grants', async () => {
    const tc = await buildTenant();
    const parent = await createGroup(app, tc, 'Matrix parent');
    const child = await createGroup(app, tc, 'Matrix child', parent);
    const admin = await buildUser(app, tc, { role: 'admin' });
    const [inherits, direct, ended, nobody] = [
      await buildUser(app, tc),
      await buildUser(app, tc),
      await buildUser(app, tc),
      await buildUser(app, tc),
    ];
    const creator = await buildUser(app, tc);
    await addMembers(app, tc, child, [inherits.id]);
    const agents = [
      await createAgent(app, tc, 'Grouped'),
      await createAgent(app, tc, 'Everyone', 'organization'),
      await createAgent(app, tc, 'Mine', 'private', creator.id),
      await createAgent(app, tc, 'Unused'),
    ];
    await grant(app, tc, agents[0]!, { groupId: parent, permission: 'edit' });
    await grant(app, tc, agents[0]!, { userId: direct.id, permission: 'view_use' });
    await grant(app, tc, agents[3]!, { userId: ended.id, permission: 'edit', endDate: '2001-01-01', timeZone: 'UTC' });
    const people = [admin, inherits, direct, ended, nobody, creator];
    const expected: string[] = [];
    for (const u of people) {
      for (const a of agents) {
        const d = await check(app, tc, a, u.id);
        if (d.level !== 'none') expected.push(`${u.id}:${a}:${d.level}`);
      }
    }
    const matrix = await request(app).get('/api/v1/reports/access-matrix').set(tc.admin).expect(200);
    const got = matrix.body.items.map(
      (r: { userId: string; agentId: string; level: string }) => `${r.userId}:${r.agentId}:${r.level}`,
    );
    assert.deepEqual([...got].sort(), expected.sort());
    assert.deepEqual(
      got.map((x: string) => x.split(':')[0]),
      [...got.map((x: string) => x.split(':')[0])].sort(),
      'users in id order',
    );
    assert.equal(got.filter((x: string) => x.startsWith(admin.id)).length, agents.length);
  });
});
