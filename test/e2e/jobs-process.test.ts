import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDb, type Db } from '../../src/db/knex.js';
import { getJob, type Job } from '../../src/jobs/index.js';
import { freshDatabaseUrl } from '../support/db.js';
import { chunksRecorded, enqueue, useTestJobKinds } from '../support/jobs.js';
import { listeningPort, startRoster, type Running } from '../support/process.js';

const ENTRY = 'test/support/roster-with-test-jobs.ts';
const CHUNKS = 40;

describe('jobs across real Roster processes', () => {
  let url: string;
  let db: Db;
  const running: Running[] = [];
  const start = async () => {
    const r = startRoster({ DATABASE_URL: url, JOB_POLL_MS: '50', JOB_LEASE_MS: '1500' }, ENTRY);
    running.push(r);
    await listeningPort(r);
    return r;
  };
  before(() => useTestJobKinds());
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await db?.close();
  });

  it('survive SIGTERM (handed back) and kill -9 (taken over when the lease expires), resuming from the last committed chunk', async function () {
    this.timeout(120_000);
    url = await freshDatabaseUrl('jobs-e2e');
    const first = await start();
    db = openDb(url);
    const tenantId = String((await db.knex('tenants').first()).id);
    const job = await enqueue(db, tenantId, { kind: 'test.count', payload: { chunks: CHUNKS, delayMs: 60 } });
    const seen: number[] = [];
    const waitFor = async (what: string, ok: (j: Job) => boolean, ms = 30_000): Promise<Job> => {
      const until = Date.now() + ms;
      for (;;) {
        const j = (await getJob(db.knex, tenantId, job.id))!;
        seen.push(j.progress.done);
        if (ok(j)) return j;
        if (Date.now() > until) throw new Error(`${what}: job is ${JSON.stringify(j)}`);
        await sleep(20);
      }
    };

    const p1 = (await waitFor('first process runs it', (j) => j.progress.done >= 3)).progress.done;
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    const handed = await db.knex('jobs').where({ tenant_id: tenantId, id: job.id }).first();
    assert.deepEqual([handed.state, handed.lease_owner], ['queued', null], 'SIGTERM hands the job back');
    assert.ok(Number(handed.progress_done) >= p1 && Number(handed.progress_done) < CHUNKS);

    const second = await start();
    const p2 = (await waitFor('second process resumes it', (j) => j.progress.done >= Number(handed.progress_done) + 3))
      .progress.done;
    second.child.kill('SIGKILL');
    await second.exited;
    const killedAt = Date.now();

    // Two processes race for the orphaned job once its lease expires.
    await Promise.all([start(), start()]);
    const done = await waitFor('another process finishes it', (j) => j.state === 'succeeded');
    assert.ok(Date.now() - killedAt < 20_000);
    assert.ok(p2 < CHUNKS);
    for (let i = 1; i < seen.length; i++)
      assert.ok(seen[i]! >= seen[i - 1]!, `progress went back: ${seen.slice(i - 1, i + 1).join(' → ')}`);
    assert.deepEqual(done.progress, { done: CHUNKS, total: CHUNKS });
    assert.deepEqual(done.result, { chunks: CHUNKS });
    assert.deepEqual(
      await chunksRecorded(db, tenantId, job.id),
      Array.from({ length: CHUNKS }, (_, i) => i),
      'every chunk committed exactly once',
    );
    const row = await db.knex('jobs').where({ tenant_id: tenantId, id: job.id }).first();
    assert.equal(Number(row.attempts), 3, 'claimed by three processes in turn, never by two at once');
    for (const r of running.slice(2)) {
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);
    }
  });
});
