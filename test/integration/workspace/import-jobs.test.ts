import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import type { Express } from 'express';
import { createJobWorker } from '../../../src/jobs/index.js';
import { createLogger } from '../../../src/log.js';
import { IMPORT_JOB_THRESHOLD_ROWS } from '../../../src/provisioning/csv-import.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { createGroup } from '../../support/workspace.js';

const ROWS = IMPORT_JOB_THRESHOLD_ROWS + 1;

function csvPost(app: Express, t: TestTenant, text: string) {
  return request(app).post('/api/v1/imports/group-members').set(t.admin).set('Content-Type', 'text/csv').send(text);
}

async function memberCount(t: TestTenant): Promise<number> {
  const r = await (await testDb()).knex('group_members').where({ tenant_id: t.tenant.id }).count({ n: '*' }).first();
  return Number(r!.n);
}

async function stagedRows(t: TestTenant, jobId: string): Promise<number> {
  const r = await (await testDb())
    .knex('job_rows')
    .where({ tenant_id: t.tenant.id, job_id: jobId })
    .count({ n: '*' })
    .first();
  return Number(r!.n);
}

/** Runs every free job, as the workers of the Roster processes would. */
async function drainJobs(): Promise<void> {
  const worker = createJobWorker({ db: await testDb(), logger: createLogger('silent') });
  while (await worker.runOnce());
}

describe('CSV imports as jobs', () => {
  const app = useApp();
  const t = useTenant();
  let file: string;
  let users: string[];
  beforeEach(async () => {
    users = await Promise.all([0, 1, 2].map(async () => (await buildUser(app, t)).id));
    const emails = await (await testDb())
      .knex('users')
      .where({ tenant_id: t.tenant.id })
      .whereIn('id', users)
      .pluck('email');
    await createGroup(app, t, 'Big Team');
    await createGroup(app, t, 'Other Team');
    const lines = ['Name,Email,Group'];
    for (let i = 0; i < ROWS; i++) lines.push(`P${i},${emails[i % 3]},${i % 2 ? 'Big Team' : 'Other Team'}`);
    file = `${lines.join('\n')}\n`;
  });

  it(`up to ${IMPORT_JOB_THRESHOLD_ROWS} rows apply within the request; more answer 202 with a job that applies them, as the caller`, async () => {
    const small = file
      .split('\n')
      .slice(0, IMPORT_JOB_THRESHOLD_ROWS + 1)
      .join('\n');
    assert.equal((await csvPost(app, t, small).expect(200)).body.rows, IMPORT_JOB_THRESHOLD_ROWS);
    assert.equal(await memberCount(t), 6);
    const res = await csvPost(app, t, file).expect(202);
    assert.deepEqual(
      [res.body.kind, res.body.state, res.body.progress, res.body.result],
      ['import.group-members', 'queued', { done: 0, total: ROWS }, null],
    );
    assert.equal(
      await stagedRows(t, res.body.id),
      Math.ceil(ROWS / 100),
      'checked rows are staged for any process, a hundred a row',
    );
    await drainJobs();
    const job = await request(app).get(`/api/v1/jobs/${res.body.id}`).set(t.admin).expect(200);
    assert.equal(job.body.state, 'succeeded');
    assert.deepEqual(job.body.progress, { done: ROWS, total: ROWS });
    assert.equal(job.body.result.rows, ROWS);
    assert.equal(await stagedRows(t, res.body.id), 0, 'staged rows are dropped');
    const events = await auditEvents(app, t, 'group.member_added');
    assert.ok(events.length > 0 && events.every((e) => e.actor.type === 'api_key'), 'the job acts as whoever uploaded');
  });

  it('a dry run of a large file answers at once and changes nothing', async () => {
    const res = await request(app)
      .post('/api/v1/imports/group-members')
      .query({ dryRun: 'true' })
      .set(t.admin)
      .set('Content-Type', 'text/csv')
      .send(file)
      .expect(200);
    assert.deepEqual([res.body.rows, res.body.dryRun], [ROWS, true]);
    assert.equal(await memberCount(t), 0);
    assert.equal((await request(app).get('/api/v1/jobs').set(t.admin).expect(200)).body.items.length, 0);
  });

  it('a large import can be cancelled before it applies; then nothing is applied', async () => {
    const res = await csvPost(app, t, file).expect(202);
    const cancelled = await request(app).post(`/api/v1/jobs/${res.body.id}/cancel`).set(t.admin).expect(200);
    assert.equal(cancelled.body.state, 'cancelled');
    assert.equal(await stagedRows(t, res.body.id), 0);
    await drainJobs();
    assert.equal(await memberCount(t), 0);
    await request(app).post(`/api/v1/jobs/${res.body.id}/cancel`).set(t.admin).expect(409);
  });

  it('rows that went bad between upload and apply fail the job with the report; nothing is applied', async () => {
    const res = await csvPost(app, t, file).expect(202);
    const groups = (await request(app).get('/api/v1/groups').set(t.admin).expect(200)).body.items as {
      id: string;
      name: string;
    }[];
    const big = groups.find((g) => g.name === 'Big Team')!;
    await request(app).patch(`/api/v1/groups/${big.id}`).set(t.admin).send({ status: 'archived' }).expect(200);
    await drainJobs();
    const job = await request(app).get(`/api/v1/jobs/${res.body.id}`).set(t.admin).expect(200);
    assert.equal(job.body.state, 'failed');
    assert.equal(job.body.error, `${Math.floor(ROWS / 2)} bad row(s): nothing was applied`);
    assert.deepEqual(job.body.result.errors[0], { line: 3, reason: 'group "Big Team" is archived' });
    assert.equal(await memberCount(t), 0, 'all or nothing');
    assert.equal(await stagedRows(t, res.body.id), 0);
  });

  it('an upload that has not arrived within REQUEST_BODY_TIMEOUT_MS gets 408 and changes nothing', async () => {
    const slowApp = await testApp({ REQUEST_BODY_TIMEOUT_MS: '300' });
    const server = http.createServer(slowApp).listen(0, '127.0.0.1');
    await new Promise((res) => server.once('listening', res));
    try {
      const sock = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
      await new Promise((res) => sock.once('connect', res));
      let response = '';
      sock.on('data', (d) => (response += d));
      const closed = new Promise((res) => sock.once('close', res));
      sock.write(
        `POST /api/v1/imports/group-members HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.admin.Authorization}\r\nContent-Type: text/csv\r\n` +
          `Content-Length: ${Buffer.byteLength(file)}\r\n\r\n${file.slice(0, 200)}`,
      );
      await closed;
      assert.match(response, /^HTTP\/1\.1 408/);
      assert.match(response, /body_timeout/);
      assert.equal(await memberCount(t), 0);
    } finally {
      server.close();
    }
  });

  it('a trickled upload holds no database connection: another tenant is answered meanwhile', async function () {
    this.timeout(30_000);
    const other = await buildTenant();
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((res) => server.once('listening', res));
    const port = (server.address() as AddressInfo).port;
    try {
      const head = `${file.split('\n').slice(0, 3).join('\n')}\n`;
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((res) => sock.once('connect', res));
      let response = '';
      sock.on('data', (d) => (response += d));
      sock.write(
        `POST /api/v1/imports/group-members HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.admin.Authorization}\r\nContent-Type: text/csv\r\n` +
          `Content-Length: ${Buffer.byteLength(head)}\r\nConnection: close\r\n\r\n`,
      );
      let sent = 0;
      const trickle = (async () => {
        for (; sent < head.length - 1; sent++) {
          sock.write(head[sent]!);
          await sleep(15);
        }
      })();
      await sleep(300);
      const started = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/tenant`, { headers: other.admin });
      const took = Date.now() - started;
      assert.equal(res.status, 200);
      assert.ok(sent < head.length - 1, 'the upload was still arriving');
      assert.ok(took < 1000, `tenant B waited ${took} ms`);
      await trickle;
      sock.write(head.slice(head.length - 1));
      await new Promise((res) => sock.once('end', res));
      assert.match(response, /^HTTP\/1\.1 200/);
      assert.equal(await memberCount(t), 2);
    } finally {
      server.close();
    }
  });
});
