import { setTimeout as sleep } from 'node:timers/promises';
import { recordEvent } from '../../src/audit/record.js';
import { systemCtx } from '../../src/context.js';
import type { Db } from '../../src/db/knex.js';
import { enqueueJob, registerJobKind, type Job, type JobKind, type NewJob } from '../../src/jobs/index.js';

export interface CountPayload {
  chunks: number;
  /** Time each chunk spends inside its transaction. */
  delayMs?: number;
}

/**
 * A test-only job kind, registered through the documented test hook (registerJobKind). Each
 * chunk writes one audit event `test.job_chunk` naming the job and the chunk's index in the same
 * transaction as its cursor, so counting those events shows whether a chunk ever ran twice or
 * was lost.
 */
export const countKind: JobKind<CountPayload, { next: number }, { chunks: number }> = {
  kind: 'test.count',
  cancellable: true,
  async runChunk(trx, job) {
    const i = job.cursor?.next ?? 0;
    if (job.payload.delayMs) await sleep(job.payload.delayMs);
    await recordEvent(trx, job.ctx, {
      event: 'test.job_chunk',
      entity: { type: 'job', id: job.id, name: null },
      before: null,
      after: { i, attempts: job.attempts },
    });
    const next = i + 1;
    return {
      cursor: { next },
      progress: { done: next, total: job.payload.chunks },
      done: next >= job.payload.chunks,
      result: { chunks: next },
    };
  },
};

/** The same, but no cancel. */
export const fixedKind: JobKind<CountPayload, { next: number }, { chunks: number }> = {
  ...countKind,
  kind: 'test.fixed',
  cancellable: false,
};

export function useTestJobKinds(): void {
  registerJobKind(countKind);
  registerJobKind(fixedKind);
}

export async function enqueue(db: Db, tenantId: string, job: NewJob): Promise<Job> {
  return db.tx((trx) => enqueueJob(trx, systemCtx(tenantId), job));
}

/** The chunk indexes the job's committed chunks recorded, in commit order. */
export async function chunksRecorded(db: Db, tenantId: string, jobId: string): Promise<number[]> {
  const rows = await db
    .knex('audit_events')
    .where({ tenant_id: tenantId, event: 'test.job_chunk', entity_id: jobId })
    .orderBy('id')
    .select('after_json');
  return rows.map((r: { after_json: string }) => (JSON.parse(r.after_json) as { i: number }).i);
}
