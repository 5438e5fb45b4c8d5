import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { cloneRows, seedUsers } from '../../support/seed.js';

/** Runs `fn` and returns what it answered with the statements and rows it read, by pattern. */
async function watched<T>(
  fn: () => Promise<T>,
  pattern: RegExp,
): Promise<{ out: T; statements: number; rows: number }> {
  const knex = (await testDb()).knex;
  let statements = 0;
  let rows = 0;
  const on = (response: unknown, query: { sql: string }) => {
    if (!pattern.test(query.sql)) return;
    statements++;
    if (Array.isArray(response)) rows += response.length;
  };
  knex.on('query-response', on);
  try {
    return { out: await fn(), statements, rows };
  } finally {
    knex.off('query-response', on);
  }
}

async function newAgent(app: Express, t: TestTenant, name = 'A'): Promise<string> {
  return (await request(app).post('/api/v1/agents').set(t.admin).send({ name, accessType: 'groups' }).expect(201)).body
    .id;
}

async function newGroup(app: Express, t: TestTenant, name: string, userIds: string[]): Promise<string> {
  const g = (await request(app).post('/api/v1/groups').set(t.admin).send({ name }).expect(201)).body.id;
  await request(app)
    .post(`/api/v1/groups/${g}/members`)
    .set(t.admin)
    .send({ userIds })
    .expect((r) => assert.ok(r.status < 300, JSON.stringify(r.body)));
  return g;
}

describe('access lists and checks cost what the page or the check asks for', function () {
  this.timeout(120000);
  const app = useApp();

  it('GET /agents/{id}/access?limit=1 examines a bounded number of candidates and runs the closure once per page', async () => {
    const t = await buildTenant();
    const users = await seedUsers(app, t, 1500);
    const g = await newGroup(app, t, 'big', users.slice(0, 1));
    await cloneRows('group_members', { tenant_id: t.tenant.id, group_id: g }, users.length - 1, (i) => ({
      user_id: users[i + 1],
    }));
    const agent = await newAgent(app, t);
    // A grant that ended long ago: every member is a candidate, none has access ...
    await request(app)
      .post(`/api/v1/agents/${agent}/grants`)
      .set(t.admin)
      .send({ groupId: g, permission: 'view_use', startDate: '2000-01-01', endDate: '2000-01-02' })
      .expect(201);
    // ... but for two, granted directly, one early in id order and one late.
    const sorted = [...users].sort();
    const holders = [sorted[3]!, sorted[1400]!];
    for (const userId of holders)
      await request(app)
        .post(`/api/v1/agents/${agent}/grants`)
        .set(t.admin)
        .send({ userId, permission: 'view_use' })
        .expect(201);

    const first = await watched(
      () => request(app).get(`/api/v1/agents/${agent}/access?limit=1`).set(t.admin).expect(200),
      /WITH RECURSIVE down/,
    );
    assert.equal(first.statements, 1, 'the candidate closure runs once per page');
    assert.deepEqual(
      first.out.body.users.map((u: { userId: string }) => u.userId),
      [holders[0]],
    );
    assert.ok(first.out.body.nextCursor);
    // A page past the holders is short (empty) and still says where to go on.
    const second = await request(app)
      .get(`/api/v1/agents/${agent}/access?limit=1&cursor=${encodeURIComponent(first.out.body.nextCursor)}`)
      .set(t.admin)
      .expect(200);
    assert.deepEqual(second.body.users, []);
    assert.ok(second.body.nextCursor, 'a page that spent its budget has a next page');
    // Following the cursors finds exactly the holders.
    const found: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: request.Response = await request(app)
        .get(`/api/v1/agents/${agent}/access?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
        .set(t.admin)
        .expect(200);
      assert.ok(page.body.users.length <= 50);
      found.push(...page.body.users.map((u: { userId: string }) => u.userId));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    assert.deepEqual(found, holders);
    assert.ok(pages >= 3, `${pages} pages for 1,500 candidates at 500 per page`);
  });

  it('GET /users/{id}/agents?limit=1 returns after a bounded scan of agents without access', async () => {
    const t = await buildTenant();
    const [uid] = await seedUsers(app, t, 1);
    const g = await newGroup(app, t, 'g', [uid!]);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(await newAgent(app, t, `a${i}`));
    // Grants on every agent, all ended, but for the last agent in id order.
    const sorted = [...ids].sort();
    for (const a of sorted) {
      const window = a === sorted[24] ? {} : { startDate: '2000-01-01', endDate: '2000-01-02' };
      await request(app)
        .post(`/api/v1/agents/${a}/grants`)
        .set(t.admin)
        .send({ groupId: g, permission: 'view_use', ...window })
        .expect(201);
    }
    const first = await request(app).get(`/api/v1/users/${uid}/agents?limit=1`).set(t.admin).expect(200);
    assert.deepEqual(first.body.items, []);
    assert.ok(first.body.nextCursor);
    const found: string[] = [];
    let cursor: string | null = first.body.nextCursor;
    while (cursor) {
      const page: request.Response = await request(app)
        .get(`/api/v1/users/${uid}/agents?limit=1&cursor=${encodeURIComponent(cursor)}`)
        .set(t.admin)
        .expect(200);
      found.push(...page.body.items.map((i: { agent: { id: string } }) => i.agent.id));
      cursor = page.body.nextCursor;
    }
    assert.deepEqual(found, [sorted[24]]);
  });

  it('one access check reads the grants of the user and their groups, not every grant of the agent', async () => {
    const t = await buildTenant();
    const [uid] = await seedUsers(app, t, 1);
    const g = await newGroup(app, t, 'g', [uid!]);
    const agent = await newAgent(app, t);
    await request(app)
      .post(`/api/v1/agents/${agent}/grants`)
      .set(t.admin)
      .send({ groupId: g, permission: 'view_use' })
      .expect(201);
    await cloneRows('agent_grants', { tenant_id: t.tenant.id, agent_id: agent }, 2000, () => ({
      id: randomUUID(),
      subject_type: 'user',
      subject_id: randomUUID(),
    }));
    const checks = [
      () => request(app).get(`/api/v1/access/agents/${agent}/users/${uid}`).set(t.admin).expect(200),
      () =>
        request(app)
          .post('/api/v1/access/checks')
          .set(t.admin)
          .send({ checks: [{ userId: uid, agentId: agent, action: 'use' }] })
          .expect(200),
      () => request(app).get(`/api/v1/users/${uid}/agents?limit=1`).set(t.admin).expect(200),
    ];
    const answers = [];
    for (const run of checks) {
      const { out, rows } = await watched(run, /agent_grants/);
      assert.ok(rows < 20, `${rows} grant rows read for one check`);
      answers.push(out.body);
    }
    assert.equal(answers[0].use, true);
    assert.match(answers[0].reasons.join(' '), /group g/);
    assert.equal(answers[1].results[0].allowed, true);
    assert.equal(answers[2].items[0].level, 'view_use');
  });

  it('a user in 33,000 groups (more than SQLite binds in one statement) gets answers, not 500s', async () => {
    const t = await buildTenant();
    const [uid] = await seedUsers(app, t, 1);
    const g = await newGroup(app, t, 'g0', [uid!]);
    const agent = await newAgent(app, t);
    await request(app)
      .post(`/api/v1/agents/${agent}/grants`)
      .set(t.admin)
      .send({ groupId: g, permission: 'view_use' })
      .expect(201);
    const groups = await cloneRows('local_groups', { tenant_id: t.tenant.id, id: g }, 33000, (i) => ({
      id: randomUUID(),
      name: `g${i + 1}`,
      name_key: `g${i + 1}`,
    }));
    await cloneRows('group_members', { tenant_id: t.tenant.id, group_id: g }, groups.length, (i) => ({
      group_id: groups[i]!.id,
    }));
    const agents = await request(app).get(`/api/v1/users/${uid}/agents`).set(t.admin).expect(200);
    assert.deepEqual(
      agents.body.items.map((i: { agent: { id: string } }) => i.agent.id),
      [agent],
    );
    const access = await request(app).get(`/api/v1/agents/${agent}/access`).set(t.admin).expect(200);
    assert.deepEqual(
      access.body.users.map((u: { userId: string }) => u.userId),
      [uid],
    );
    const check = await request(app)
      .post('/api/v1/access/checks')
      .set(t.admin)
      .send({ checks: [{ userId: uid, agentId: agent, action: 'use' }] })
      .expect(200);
    assert.equal(check.body.results[0].allowed, true);
    await request(app).get(`/api/v1/access/agents/${agent}/users/${uid}`).set(t.admin).expect(200);
    for (const report of ['access-matrix', 'coverage']) {
      const res = await request(app).get(`/api/v1/reports/${report}`).set(t.admin).expect(200);
      assert.ok(Array.isArray(res.body.items), report);
    }
  });
});
