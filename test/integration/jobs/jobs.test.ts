import assert from 'node:assert/strict';
import request from 'supertest';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../../src/log.js';
import { createJobWorker, getJob, runJobInline, stageJobRows, type Job } from '../../../src/jobs/index.js';
import { claimJob } from '../../../src/jobs/store.js';
import { runChunk } from '../../../src/jobs/runner.js';
import type { Db } from '../../../src/db/knex.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { chunksRecorded, enqueue, useTestJobKinds } from '../../support/jobs.js';

const logger = createLogger('silent');
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Runs jobs until none is free: the run's database may hold other suites' jobs too. */
async function drain(worker: ReturnType<typeof createJobWorker>): Promise<void> {
  while (await worker.runOnce());
}

describe('jobs', () => {
  let db: Db;
  before(async () => {
    useTestJobKinds();
    db = await testDb();
  });
  // After the hook above, so the app is built with the test job kinds registered.
  const app = useApp();
  const t = useTenant();

  it('a small job finishes within the inline budget; a large one is handed to the workers and resumes where it stopped', async () => {
    const small = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 3 }, total: 3 });
    assert.equal(small.state, 'queued');
    const done = await runJobInline(db, t.tenant.id, small.id, 1500);
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.progress, { done: 3, total: 3 });
    assert.deepEqual(done.result, { chunks: 3 });
    assert.ok(done.startedAt && done.finishedAt);
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, small.id), [0, 1, 2]);

    const large = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 12, delayMs: 50 } });
    const partial = await runJobInline(db, t.tenant.id, large.id, 200);
    assert.equal(partial.state, 'queued', 'handed back for the workers');
    assert.ok(partial.progress.done > 0 && partial.progress.done < 12, `progress ${partial.progress.done}`);
    await drain(createJobWorker({ db, logger }));
    const finished = (await getJob(db.knex, t.tenant.id, large.id))!;
    assert.equal(finished.state, 'succeeded');
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, large.id), range(12), 'each chunk committed exactly once');
  });

  it('lists and reads jobs over the API, admins only, each tenant its own', async () => {
    const a = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    const b = await enqueue(db, t.tenant.id, { kind: 'test.fixed', payload: { chunks: 1 } });
    await runJobInline(db, t.tenant.id, b.id, 1000);
    const one = await request(app).get(`/api/v1/jobs/${a.id}`).set(t.admin).expect(200);
    assert.deepEqual(
      {
        id: one.body.id,
        kind: one.body.kind,
        state: one.body.state,
        progress: one.body.progress,
        error: one.body.error,
        result: one.body.result,
        startedAt: one.body.startedAt,
      },
      {
        id: a.id,
        kind: 'test.count',
        state: 'queued',
        progress: { done: 0, total: null },
        error: null,
        result: null,
        startedAt: null,
      },
    );
    const all = await request(app).get('/api/v1/jobs').set(t.admin).expect(200);
    assert.deepEqual(
      all.body.items.map((j: Job) => j.id),
      [b.id, a.id],
      'newest first',
    );
    const succeeded = await request(app).get('/api/v1/jobs').query({ state: 'succeeded' }).set(t.admin).expect(200);
    assert.deepEqual(
      succeeded.body.items.map((j: Job) => j.id),
      [b.id],
    );
    const byKind = await request(app).get('/api/v1/jobs').query({ kind: 'test.count' }).set(t.admin).expect(200);
    assert.deepEqual(
      byKind.body.items.map((j: Job) => j.id),
      [a.id],
    );
    const page = await request(app).get('/api/v1/jobs').query({ limit: 1 }).set(t.admin).expect(200);
    const next = await request(app)
      .get('/api/v1/jobs')
      .query({ limit: 1, cursor: page.body.nextCursor })
      .set(t.admin)
      .expect(200);
    assert.deepEqual([page.body.items[0].id, next.body.items[0].id, next.body.nextCursor], [b.id, a.id, null]);
    await request(app).get('/api/v1/jobs').query({ state: 'done' }).set(t.admin).expect(400);

    const other = await buildTenant();
    await request(app).get(`/api/v1/jobs/${a.id}`).set(other.admin).expect(404);
    await request(app).post(`/api/v1/jobs/${a.id}/cancel`).set(other.admin).expect(404);
    assert.deepEqual((await request(app).get('/api/v1/jobs').set(other.admin).expect(200)).body.items, []);
    assert.equal(
      (await getJob(db.knex, t.tenant.id, a.id))!.state,
      'queued',
      "another tenant's cancel changed nothing",
    );
    const member = await buildUser(app, t);
    await request(app).get('/api/v1/jobs').set(member.auth).expect(403);
    await request(app).get(`/api/v1/jobs/${a.id}`).set(member.auth).expect(403);
    await request(app).post(`/api/v1/jobs/${a.id}/cancel`).set(member.auth).expect(403);
  });

  it('cancels a queued or running job before its final chunk, never after; some kinds cannot be cancelled', async () => {
    const queued = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 2 } });
    const res = await request(app).post(`/api/v1/jobs/${queued.id}/cancel`).set(t.admin).expect(200);
    assert.equal(res.body.state, 'cancelled');
    assert.ok(res.body.finishedAt);
    assert.equal(
      (await request(app).post(`/api/v1/jobs/${queued.id}/cancel`).set(t.admin).expect(409)).body.code,
      'job_finished',
    );
    assert.equal(
      (await runJobInline(db, t.tenant.id, queued.id, 1000)).state,
      'cancelled',
      'a cancelled job does not run',
    );
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, queued.id), []);

    // Running: the holder's next chunk finds the job cancelled and runs nothing.
    const running = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 5 } });
    assert.ok(await claimJob(db.knex, t.tenant.id, running.id, 'holder', 30_000, Date.now()));
    assert.equal(await runChunk(db, t.tenant.id, running.id, 'holder', 30_000), 'more');
    await request(app).post(`/api/v1/jobs/${running.id}/cancel`).set(t.admin).expect(200);
    assert.equal(await runChunk(db, t.tenant.id, running.id, 'holder', 30_000), 'lost');
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, running.id), [0]);
    const after = (await getJob(db.knex, t.tenant.id, running.id))!;
    assert.deepEqual([after.state, after.progress.done], ['cancelled', 1]);

    const finished = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    await runJobInline(db, t.tenant.id, finished.id, 1000);
    await request(app).post(`/api/v1/jobs/${finished.id}/cancel`).set(t.admin).expect(409);
    const fixed = await enqueue(db, t.tenant.id, { kind: 'test.fixed', payload: { chunks: 1 } });
    assert.equal(
      (await request(app).post(`/api/v1/jobs/${fixed.id}/cancel`).set(t.admin).expect(409)).body.code,
      'job_not_cancellable',
    );
    await request(app).post('/api/v1/jobs/nope/cancel').set(t.admin).expect(404);
  });

  it('a newer job with the same key supersedes the older one, which stops before its next chunk', async () => {
    const first = await enqueue(db, t.tenant.id, {
      kind: 'test.count',
      payload: { chunks: 5 },
      key: 'mapping_rule:r1',
    });
    assert.ok(await claimJob(db.knex, t.tenant.id, first.id, 'holder', 30_000, Date.now()));
    assert.equal(await runChunk(db, t.tenant.id, first.id, 'holder', 30_000), 'more');
    const other = await enqueue(db, t.tenant.id, {
      kind: 'test.count',
      payload: { chunks: 1 },
      key: 'mapping_rule:r2',
    });
    const second = await enqueue(db, t.tenant.id, {
      kind: 'test.count',
      payload: { chunks: 1 },
      key: 'mapping_rule:r1',
    });
    const old = (await getJob(db.knex, t.tenant.id, first.id))!;
    assert.deepEqual([old.state, old.error], ['cancelled', 'superseded']);
    assert.equal(await runChunk(db, t.tenant.id, first.id, 'holder', 30_000), 'lost');
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, first.id), [0]);
    assert.equal((await getJob(db.knex, t.tenant.id, other.id))!.state, 'queued', 'another key is untouched');
    assert.equal((await runJobInline(db, t.tenant.id, second.id, 1000)).state, 'succeeded');
    // The same key in another tenant is another key.
    const u = await buildTenant();
    const elsewhere = await enqueue(db, u.tenant.id, {
      kind: 'test.count',
      payload: { chunks: 1 },
      key: 'mapping_rule:r2',
    });
    assert.equal(elsewhere.state, 'queued');
    assert.equal((await getJob(db.knex, t.tenant.id, other.id))!.state, 'queued');
  });

  it('counts queued and running jobs of all tenants in /metrics', async () => {
    await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    const res = await request(app).get('/metrics').expect(200);
    const queued = Number(/^roster_jobs\{state="queued"\} (\d+)$/m.exec(res.text)?.[1]);
    assert.ok(
      queued >= 1,
      res.text
        .split('\n')
        .filter((l) => l.startsWith('roster_jobs'))
        .join('\n'),
    );
    assert.match(res.text, /^roster_jobs\{state="running"\} \d+$/m);
  });

  it('concurrent enqueues with one key leave exactly one live job', async () => {
    const results = await Promise.allSettled(
      [0, 1, 2].map(() =>
        enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 }, key: 'mapping_rule:race' }),
      ),
    );
    assert.ok(results.some((r) => r.status === 'fulfilled'));
    const live = await db
      .knex('jobs')
      .where({ tenant_id: t.tenant.id, job_key: 'mapping_rule:race' })
      .whereIn('state', ['queued', 'running'])
      .count({ n: '*' })
      .first();
    assert.equal(Number(live!.n), 1);
  });

  it('two workers over one database never run the same job or chunk twice', async function () {
    this.timeout(60_000);
    const jobs = await Promise.all(
      range(6).map(() => enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 4, delayMs: 5 } })),
    );
    const workers = [createJobWorker({ db, logger, pollMs: 20 }), createJobWorker({ db, logger, pollMs: 20 })];
    workers.forEach((w) => w.start());
    const until = Date.now() + 30_000;
    let states: string[] = [];
    while (Date.now() < until) {
      states = await Promise.all(jobs.map(async (j) => (await getJob(db.knex, t.tenant.id, j.id))!.state));
      if (states.every((s) => s === 'succeeded')) break;
      await sleep(50);
    }
    await Promise.all(workers.map((w) => w.stop()));
    assert.deepEqual(
      states,
      jobs.map(() => 'succeeded'),
    );
    for (const j of jobs) {
      assert.deepEqual(await chunksRecorded(db, t.tenant.id, j.id), range(4));
      const row = await db.knex('jobs').where({ tenant_id: t.tenant.id, id: j.id }).first();
      assert.equal(Number(row.attempts), 1, 'claimed once');
    }
    // Both claim the same job at the same instant: exactly one wins.
    const contested = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    const wins = await Promise.all(
      ['a', 'b', 'c'].map((o) => claimJob(db.knex, t.tenant.id, contested.id, o, 30_000, Date.now())),
    );
    assert.equal(wins.filter(Boolean).length, 1);
  });

  it("tenants take turns: one tenant's many jobs do not hold back another's", async () => {
    const busy = await Promise.all(
      range(4).map(() => enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } })),
    );
    const other = await buildTenant();
    const late = await enqueue(db, other.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    const worker = createJobWorker({ db, logger });
    while ((await getJob(db.knex, other.tenant.id, late.id))!.state !== 'succeeded')
      assert.ok(await worker.runOnce(), 'a job was left');
    const done = await Promise.all(busy.map(async (j) => (await getJob(db.knex, t.tenant.id, j.id))!.state));
    assert.ok(done.filter((s) => s === 'succeeded').length <= 1, `the busy tenant ran ${done.join(', ')} first`);
    await drain(worker);
  });

  it('a job whose holder went silent is taken over when its lease expires, from its last committed chunk', async () => {
    const job = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 3 } });
    assert.ok(await claimJob(db.knex, t.tenant.id, job.id, 'dead', 200, Date.now()));
    assert.equal(await runChunk(db, t.tenant.id, job.id, 'dead', 200), 'more');
    const worker = createJobWorker({ db, logger, leaseMs: 5000 });
    await drain(worker);
    const held = await db.knex('jobs').where({ tenant_id: t.tenant.id, id: job.id }).first();
    assert.deepEqual(
      [held.state, held.lease_owner, Number(held.progress_done)],
      ['running', 'dead', 1],
      'the lease still holds',
    );
    await sleep(250);
    await drain(worker);
    assert.equal(await runChunk(db, t.tenant.id, job.id, 'dead', 200), 'lost', 'the old holder runs nothing more');
    const done = (await getJob(db.knex, t.tenant.id, job.id))!;
    assert.deepEqual([done.state, done.progress.done], ['succeeded', 3]);
    assert.deepEqual(await chunksRecorded(db, t.tenant.id, job.id), [0, 1, 2]);
  });

  it('workers drop jobs finished more than 30 days ago, and rows staged for jobs never enqueued', async () => {
    const old = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    const recent = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 1 } });
    await runJobInline(db, t.tenant.id, old.id, 1000);
    await runJobInline(db, t.tenant.id, recent.id, 1000);
    await db
      .knex('jobs')
      .where({ tenant_id: t.tenant.id, id: old.id })
      .update({ finished_at: Date.now() - 31 * 86_400_000 });
    const hourAgo = Date.now() - 3_700_000;
    await stageJobRows(db, t.tenant.id, 'never-enqueued', 0, [{ a: 1 }], hourAgo);
    await stageJobRows(db, t.tenant.id, recent.id, 0, [{ a: 1 }], hourAgo);
    await stageJobRows(db, t.tenant.id, 'being-staged', 0, [{ a: 1 }]);
    const worker = createJobWorker({ db, logger, pollMs: 20 });
    worker.start();
    const until = Date.now() + 10_000;
    while (Date.now() < until && (await getJob(db.knex, t.tenant.id, old.id))) await sleep(20);
    await worker.stop();
    assert.equal(await getJob(db.knex, t.tenant.id, old.id), undefined);
    assert.ok(await getJob(db.knex, t.tenant.id, recent.id));
    const staged = await db.knex('job_rows').where({ tenant_id: t.tenant.id }).orderBy('job_id').pluck('job_id');
    assert.deepEqual(staged, ['being-staged', recent.id].sort());
  });

  it("a chunk that outlasts the lease keeps its job: the lease runs from the chunk's commit", async () => {
    const job = await enqueue(db, t.tenant.id, { kind: 'test.count', payload: { chunks: 2, delayMs: 300 } });
    assert.ok(await claimJob(db.knex, t.tenant.id, job.id, 'slow', 200, Date.now()));
    assert.equal(await runChunk(db, t.tenant.id, job.id, 'slow', 200), 'more');
    assert.equal(await runChunk(db, t.tenant.id, job.id, 'slow', 200), 'ended');
    assert.equal((await getJob(db.knex, t.tenant.id, job.id))!.state, 'succeeded');
  });
});
