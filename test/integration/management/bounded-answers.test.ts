import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { HOLDERS_SAMPLE } from '../../../src/provisioning/role-templates.js';
import { testApp } from '../../support/app.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { templateId } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { addMembers, createAgent, createGroup, grant } from '../../support/workspace.js';

let seq = 0;

/** Active users over SCIM, cheaply: no key of their own. */
async function users(app: Express, t: TestTenant, n: number, patch: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const created = await scimClient(app, t.scimToken).post('/Users', oktaUser(`bounded${++seq}-${Date.now()}@example.com`, { externalId: `bounded-${seq}` })).expect(201);
    if (Object.keys(patch).length) await request(app).patch(`/api/v1/users/${created.body.id}`).set(t.admin).send(patch).expect(200);
    ids.push(created.body.id);
  }
  return ids.sort();
}

describe('answers bounded by the request, not the tenant', () => {
  let app: Express;
  let t: TestTenant;
  before(async () => {
    app = await testApp();
    t = await buildTenant();
  });

  it("refuses to delete a held role template with a count and a bounded sample of its users", async () => {
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
    for (const u of direct) grantIds.push(await grant(app, t, agent, { userId: u, permission: 'edit', endDate: '2000-01-01', timeZone: 'UTC' }));
    // An ended grant reaches nobody: the direct holders are listed as grants, not as users.
    const reached = [...inChild, outsider[0]!].sort();

    const grants: { id: string; inForce: boolean }[] = [];
    const seen: { userId: string; level: string }[] = [];
    let cursor: string | undefined;
    let pages = 0;
    let firstCursor = '';
    do {
      const res = await request(app).get(`/api/v1/agents/${agent}/access`).query({ limit: 2, ...(cursor ? { cursor } : {}) }).set(t.admin).expect(200);
      assert.ok(res.body.grants.length <= 2 && res.body.users.length <= 2, JSON.stringify(res.body));
      assert.equal(res.body.agent.id, agent);
      grants.push(...res.body.grants);
      seen.push(...res.body.users);
      cursor = res.body.nextCursor ?? undefined;
      firstCursor ||= cursor ?? '';
      assert.ok(++pages < 10, 'the cursor ends');
    } while (cursor);
    assert.deepEqual(grants.map((g) => g.id), [...grantIds].sort());
    assert.deepEqual(grants.filter((g) => g.inForce).length, 1);
    assert.deepEqual(seen.map((u) => u.userId), reached);
    assert.ok(seen.every((u) => u.level === 'view_use'));

    const all = await request(app).get(`/api/v1/agents/${agent}/access`).set(t.admin).expect(200);
    assert.equal(all.body.nextCursor, null);
    assert.equal(all.body.users.length, reached.length);
    await request(app).get(`/api/v1/agents/${agent}/access`).query({ cursor: 'not-a-cursor' }).set(t.admin).expect(400);
    const other = await buildTenant();
    await request(app).get(`/api/v1/agents/${agent}/access`).query({ limit: 2, cursor: firstCursor }).set(other.admin).expect(404);
    assert.ok(firstCursor);
  });
});
