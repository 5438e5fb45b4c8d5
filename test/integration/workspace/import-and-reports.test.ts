import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { parse } from 'csv-parse/sync';
import { runJobInline } from '../../../src/jobs/index.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { addMembers, createAgent, createGroup, grant } from '../../support/workspace.js';

function csvPost(app: Express, t: TestTenant, kind: string, text: string, dryRun = false) {
  return request(app)
    .post(`/api/v1/imports/${kind}`)
    .query(dryRun ? { dryRun: 'true' } : {})
    .set(t.admin)
    .set('Content-Type', 'text/csv')
    .send(text);
}

async function memberCount(t: TestTenant): Promise<number> {
  const db = await testDb();
  const r = await db.knex('group_members').where({ tenant_id: t.tenant.id }).count({ n: '*' }).first();
  return Number(r!.n);
}

describe('CSV import', () => {
  const app = useApp();
  const t = useTenant();

  it('users to groups: dry run reports, the real run applies, a re-run changes nothing', async () => {
    const [a, b] = [await buildUser(app, t), await buildUser(app, t)];
    await createGroup(app, t, 'Sales Team');
    await createGroup(app, t, 'Support Team');
    const file = `Name,Email,Group\nAda,${a.email.toUpperCase()},Sales Team\nBob,${b.email},support team\nAda,${a.email},Support Team\n`;
    const dry = await csvPost(app, t, 'group-members', file, true).expect(200);
    assert.deepEqual(
      { rows: dry.body.rows, added: dry.body.added, dryRun: dry.body.dryRun },
      { rows: 3, added: 3, dryRun: true },
    );
    assert.equal(await memberCount(t), 0, 'a dry run changes nothing');
    const real = await csvPost(app, t, 'group-members', file).expect(200);
    assert.equal(real.body.added, 3);
    assert.equal(await memberCount(t), 3);
    const again = await csvPost(app, t, 'group-members', file).expect(200);
    assert.deepEqual([again.body.added, again.body.unchanged], [0, 3]);
    const events = await auditEvents(app, t, 'group.member_added');
    assert.equal(events.length, 3);
    assert.ok(events.every((e) => (e.after as { email: string }).email));
  });

  it('any bad row: nothing applied, every bad row reported with its line and reason', async () => {
    const a = await buildUser(app, t);
    const archived = await createGroup(app, t, 'Old Team');
    await request(app).patch(`/api/v1/groups/${archived}`).set(t.admin).send({ status: 'archived' }).expect(200);
    await createGroup(app, t, 'Sales Team');
    const file = [
      'Name,Email,Group',
      `Ada,${a.email},Sales Team`,
      'Nobody,nobody@example.com,Sales Team',
      `Ada,${a.email},No Such Team`,
      '',
      `Ada,${a.email},Old Team`,
      'Empty,,',
    ].join('\n');
    const res = await csvPost(app, t, 'group-members', file).expect(422);
    assert.equal(res.body.code, 'import_rejected');
    assert.deepEqual(
      res.body.report.errors.map((e: { line: number; reason: string }) => [e.line, e.reason]),
      [
        [3, 'no user with email nobody@example.com'],
        [4, 'no group named "No Such Team"'],
        [6, 'group "Old Team" is archived'],
        [7, 'Email is empty; Group is empty'],
      ],
    );
    assert.equal(await memberCount(t), 0);
    const header = await csvPost(app, t, 'group-members', 'Who,Where\nx,y\n').expect(400);
    assert.match(header.body.detail, /missing: name, email, group/);
    await request(app).post('/api/v1/imports/group-members').set(t.admin).send({ rows: [] }).expect(415);
  });

  it("agent grants, with seed 004's permission names, dates and the tenant time zone", async () => {
    const g1 = await createGroup(app, t, 'G1');
    const g2 = await createGroup(app, t, 'G2');
    const a1 = await createAgent(app, t, 'A1');
    const a2 = await createAgent(app, t, 'A2');
    const priv = await createAgent(app, t, 'Private', 'private');
    const file = `AgentId,GroupId,Permission,StartDate,EndDate\n${a1},${g1},VIEW_AND_USE,2024-01-01,\n${a1},${g2},EDIT,2024-01-01,\n${a2},${g1},VIEW_AND_USE,2024-01-01,2024-12-31\n`;
    const ok = await csvPost(app, t, 'agent-grants', file).expect(200);
    assert.equal(ok.body.added, 3);
    const grants = await request(app).get(`/api/v1/agents/${a2}/grants`).set(t.admin).expect(200);
    assert.deepEqual(
      grants.body.items.map((g: { permission: string; startDate: string; endDate: string; timeZone: string }) => [
        g.permission,
        g.startDate,
        g.endDate,
        g.timeZone,
      ]),
      [['view_use', '2024-01-01', '2024-12-31', 'UTC']],
    );
    assert.equal((await csvPost(app, t, 'agent-grants', file).expect(200)).body.unchanged, 3);
    const bad = `AgentId,GroupId,Permission,StartDate,EndDate\n${priv},${g1},EDIT,,\nnope,${g1},READ,2024-13-01,\n${a1},${g1},EDIT,2024-05-01,2024-04-01\n`;
    const res = await csvPost(app, t, 'agent-grants', bad).expect(422);
    assert.deepEqual(
      res.body.report.errors.map((e: { line: number }) => e.line),
      [2, 3, 4],
    );
    assert.match(res.body.report.errors[0].reason, /private/);
    assert.match(
      res.body.report.errors[1].reason,
      /no agent "nope".*Permission must be VIEW_AND_USE or EDIT.*StartDate "2024-13-01"/,
    );
    assert.match(res.body.report.errors[2].reason, /EndDate is before StartDate/);
  });

  it('100,000 rows in one streamed request, checked, then applied by a job in one transaction', async function () {
    this.timeout(120000);
    const users = await Promise.all(Array.from({ length: 5 }, () => buildUser(app, t)));
    const groups = await Promise.all(Array.from({ length: 20 }, (_, i) => createGroup(app, t, `Bulk ${i}`)));
    assert.equal(groups.length, 20);
    const lines = ['Name,Email,Group'];
    for (let i = 0; i < 100_000; i++) lines.push(`Person ${i},${users[i % 5]!.email},Bulk ${i % 20}`);
    const accepted = await csvPost(app, t, 'group-members', `${lines.join('\n')}\n`).expect(202);
    assert.deepEqual(
      [accepted.body.kind, accepted.body.state, accepted.body.progress],
      ['import.group-members', 'queued', { done: 0, total: 100_000 }],
    );
    const job = await runJobInline(await testDb(), t.tenant.id, accepted.body.id, 120_000);
    assert.equal(job.state, 'succeeded');
    const res = await request(app).get(`/api/v1/jobs/${job.id}`).set(t.admin).expect(200);
    assert.equal(res.body.result.rows, 100_000);
    assert.equal(res.body.result.added, 20, 'five users spread over twenty groups, each pair once');
    assert.equal(res.body.result.unchanged, 100_000 - 20);
    assert.equal(await memberCount(t), 20);
  });
});

describe('permission reports', () => {
  it('access matrix, group membership and coverage, as JSON and CSV', async () => {
    const app = await testApp();
    const t = await buildTenant();
    const g = await createGroup(app, t, 'Reporters');
    await createGroup(app, t, 'Empty Group');
    const a = await createAgent(app, t, 'Reported Agent');
    await createAgent(app, t, 'Lonely Agent');
    const org = await createAgent(app, t, '=Org Agent', 'organization');
    const inside = await buildUser(app, t);
    const outside = await buildUser(app, t);
    await addMembers(app, t, g, [inside.id], 'manager');
    await grant(app, t, a, { groupId: g, permission: 'view_use', endDate: '2099-01-01', timeZone: 'UTC' });
    const soon = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
    await grant(app, t, a, { userId: outside.id, permission: 'view_use', endDate: soon, timeZone: 'UTC' });

    const matrix = await request(app).get('/api/v1/reports/access-matrix').set(t.admin).expect(200);
    const pairs = matrix.body.items
      .map(
        (r: { userId: string; agentId: string; level: string }) =>
          `${r.userId === inside.id ? 'inside' : 'outside'}:${r.agentId === a ? 'a' : 'org'}:${r.level}`,
      )
      .sort();
    assert.deepEqual(pairs, ['inside:a:edit', 'inside:org:view_use', 'outside:a:view_use', 'outside:org:view_use']);
    const csv = await request(app)
      .get('/api/v1/reports/access-matrix')
      .query({ format: 'csv' })
      .set(t.admin)
      .expect(200);
    assert.match(csv.headers['content-type']!, /text\/csv/);
    const rows = parse(csv.text, { columns: true }) as Record<string, string>[];
    assert.equal(rows.length, 4);
    // A name that looks like a formula is escaped for spreadsheets.
    assert.ok(rows.some((r) => r.agentName === "'=Org Agent"));

    const byGroup = await request(app).get('/api/v1/reports/group-membership').set(t.admin).expect(200);
    assert.deepEqual(
      byGroup.body.items.map((r: { groupName: string; userId: string; role: string; source: string }) => [
        r.groupName,
        r.userId,
        r.role,
        r.source,
      ]),
      [['Reporters', inside.id, 'manager', 'manual']],
    );

    const cov = await request(app).get('/api/v1/reports/coverage').query({ days: 30 }).set(t.admin).expect(200);
    const sections = cov.body.items.map((r: { section: string; name: string }) => `${r.section}:${r.name}`).sort();
    assert.deepEqual(sections, [
      'agent_without_groups:Lonely Agent',
      'empty_group:Empty Group',
      'grant_expiring:Reported Agent',
    ]);
    const later = await request(app).get('/api/v1/reports/coverage').query({ days: 1 }).set(t.admin).expect(200);
    assert.ok(!later.body.items.some((r: { section: string }) => r.section === 'grant_expiring'));
    await request(app)
      .delete(`/api/v1/agents/${org}`)
      .set(t.admin)
      .expect((r) => assert.ok(r.status < 300));
    const none = await request(app).get('/api/v1/reports/coverage').set(t.admin).expect(200);
    assert.ok(
      none.body.items.some(
        (r: { section: string; id: string }) => r.section === 'user_without_access' && r.id === outside.id,
      ) === false,
      'outside still has a direct grant',
    );
    const member = await buildUser(app, t);
    await request(app).get('/api/v1/reports/access-matrix').set(member.auth).expect(403);
  });
});
