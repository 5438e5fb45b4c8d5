import type { Knex } from 'knex';
import { requireAdmin, type Principal } from '../access/principal.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { enqueueJob, presentJob, registerJobKind, type Job } from '../jobs/index.js';
import type { SyncDiff } from '../mapping/engine.js';
import {
  counts,
  emptyTally,
  finishReconcile,
  reconcileChunk,
  sweepChunk,
  tally,
  tallySize,
  type DiffTally,
  type SweepTarget,
} from './mapping.js';

/**
 * Rule sweeps and reconcile as durable jobs (src/jobs): each chunk runs in the job runner's
 * transaction and commits with the job's cursor, so a sweep killed half-way resumes from its
 * last committed chunk in whichever process claims it next. The check already ignores rows of
 * a disabled, deleted or changed rule (src/mapping/live.ts): a pending sweep only cleans up.
 */

const SWEEP_JOB = 'mapping.sweep';
const RECONCILE_JOB = 'mapping.reconcile';

type Applied = ReturnType<typeof counts>;

interface SweepCursor {
  after: string;
  applied: Applied;
}

export interface SweepResult {
  applied: Applied;
  /** True when a newer version of the rule (or its deletion) took over before the end. */
  superseded: boolean;
}

const ZERO: Applied = { membershipsAdded: 0, membershipsRemoved: 0, grantsAdded: 0, grantsRemoved: 0 };

function plus(a: Applied, b: Applied): Applied {
  return {
    membershipsAdded: a.membershipsAdded + b.membershipsAdded,
    membershipsRemoved: a.membershipsRemoved + b.membershipsRemoved,
    grantsAdded: a.grantsAdded + b.grantsAdded,
    grantsRemoved: a.grantsRemoved + b.grantsRemoved,
  };
}

async function tenantUsers(trx: Knex, tenantId: string): Promise<number> {
  return Number((await trx('users').where({ tenant_id: tenantId }).count({ n: '*' }).first())?.n ?? 0);
}

registerJobKind<SweepTarget, SweepCursor, SweepResult>({
  kind: SWEEP_JOB,
  // A half-done sweep leaves rows that count for nothing but would mislead a reader; it runs to the end or is superseded.
  cancellable: false,
  async runChunk(trx, job) {
    const cursor = job.cursor ?? { after: '', applied: ZERO };
    const r = await sweepChunk(trx, job.ctx, job.payload, cursor.after);
    const applied = plus(cursor.applied, counts(r.diff));
    const total = job.progress.total ?? (await tenantUsers(trx, job.tenantId));
    return {
      cursor: { after: r.next, applied },
      progress: { done: job.progress.done + r.users, total },
      done: r.state !== 'more',
      result: { applied, superseded: r.state === 'superseded' },
    };
  },
});

interface ReconcileCursor {
  after: string;
  tally: DiffTally;
}

export interface ReconcileResult {
  fixed: number;
  counts: DiffTally['counts'];
  differences: ReturnType<typeof presentDiff>;
}

/** Derived rows as the API shows them: grant row ids are internal. */
function presentDiff(d: SyncDiff) {
  return {
    membershipsAdded: d.membershipsAdded,
    membershipsRemoved: d.membershipsRemoved,
    grantsAdded: d.grantsAdded,
    grantsRemoved: d.grantsRemoved.map(({ id: _id, ...g }) => g),
    membershipsRestamped: d.membershipsRestamped,
    grantsRestamped: d.grantsRestamped.map(({ id: _id, ...g }) => g),
  };
}

registerJobKind<Record<string, never>, ReconcileCursor, ReconcileResult>({
  kind: RECONCILE_JOB,
  cancellable: true,
  async runChunk(trx, job) {
    const cursor = job.cursor ?? { after: '', tally: emptyTally() };
    const r = await reconcileChunk(trx, job.ctx, cursor.after);
    tally(cursor.tally, r.diff);
    const total = job.progress.total ?? (await tenantUsers(trx, job.tenantId));
    const progress = { done: job.progress.done + r.users, total };
    if (r.state === 'more') return { cursor: { after: r.next, tally: cursor.tally }, progress, done: false };
    const fixed = await finishReconcile(trx, job.ctx, tallySize(cursor.tally));
    return {
      cursor: { after: r.next, tally: cursor.tally },
      progress,
      done: true,
      result: { fixed, counts: cursor.tally.counts, differences: presentDiff(cursor.tally.sample) },
    };
  },
});

/** Enqueues a rule's sweep in the rule change's transaction; it supersedes the rule's older sweep. */
export function enqueueSweep(trx: Knex.Transaction, ctx: Ctx, sweep: SweepTarget): Promise<Job> {
  return enqueueJob(trx, ctx, { kind: SWEEP_JOB, payload: sweep, key: `mapping_rule:${sweep.ruleId}` });
}

/** Starts a reconcile; a newer one supersedes one still running. */
export async function startReconcile(db: Db, ctx: Ctx, p: Principal): Promise<Job> {
  requireAdmin(p, 'reconcile mapping rules');
  return db.tx((trx) => enqueueJob(trx, ctx, { kind: RECONCILE_JOB, payload: {}, key: 'mapping:reconcile' }));
}

/** The tenant's mapping jobs still queued or running, oldest first. */
export async function liveMappingJobs(knex: Knex, tenantId: string): Promise<Job[]> {
  const rows = await knex('jobs')
    .where({ tenant_id: tenantId })
    .whereIn('kind', [SWEEP_JOB, RECONCILE_JOB])
    .whereIn('state', ['queued', 'running'])
    .orderBy('id')
    .limit(100);
  return rows.map(presentJob);
}
