import type { Knex } from 'knex';
import { insertChunked } from '../db/batch.js';
import type { Db } from '../db/knex.js';
import { parseJson } from '../db/rows.js';

/**
 * Rows a job works through (table `job_rows`), staged in the database so that whichever process
 * claims the job can read them. Staging happens before the job is enqueued, in short
 * transactions; the job's kind drops them in its `cleanup`. Rows of a job that was never
 * enqueued (the staging process died) are dropped by the workers after an hour.
 */

export const ORPHAN_AGE_MS = 3_600_000;

/** Writes rows `firstSeq`, `firstSeq + 1`, … in one short transaction. */
export async function stageJobRows(
  db: Db,
  tenantId: string,
  jobId: string,
  firstSeq: number,
  rows: unknown[],
  now = Date.now(),
): Promise<void> {
  const staged = rows.map((data, i) => ({
    tenant_id: tenantId,
    job_id: jobId,
    seq: firstSeq + i,
    data_json: JSON.stringify(data),
    created_at: now,
  }));
  await db.tx((trx) => insertChunked(trx, 'job_rows', staged));
}

/** Up to `limit` rows after `afterSeq`, in order. */
export async function readJobRows<T>(
  trx: Knex,
  tenantId: string,
  jobId: string,
  afterSeq: number,
  limit: number,
): Promise<{ seq: number; data: T }[]> {
  const rows = await trx('job_rows')
    .where({ tenant_id: tenantId, job_id: jobId })
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .select('seq', 'data_json');
  return rows.map((r: Record<string, unknown>) => ({ seq: Number(r.seq), data: parseJson<T>(r.data_json, null as T) }));
}

export async function dropJobRows(trx: Knex, tenantId: string, jobId: string): Promise<void> {
  await trx('job_rows').where({ tenant_id: tenantId, job_id: jobId }).delete();
}

/** Drops staged rows older than `before` whose job was never written. */
export async function dropOrphanJobRows(knex: Knex, before: number): Promise<number> {
  const n = await knex('job_rows')
    .where('created_at', '<', before)
    .whereNotExists((q) =>
      q
        .select(knex.raw('1'))
        .from('jobs')
        .whereRaw('jobs.tenant_id = job_rows.tenant_id')
        .whereRaw('jobs.id = job_rows.job_id'),
    )
    .delete();
  return Number(n);
}
