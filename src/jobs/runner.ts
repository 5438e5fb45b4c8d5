import os from 'node:os';
import type { Db } from '../db/knex.js';
import { newId } from '../db/ids.js';
import { Unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import { JobFailed, jobKind } from './registry.js';
import { claimJob, failJob, getJob, holdLease, loadRunning, releaseJob, storeChunk, type Job } from './store.js';

/** JOB_LEASE_MS's default: how long a lease lasts past the start of its holder's last chunk. */
export const DEFAULT_LEASE_MS = 30_000;
/** How long a request runs the job it enqueued before answering 202 (see runJobInline). */
export const INLINE_BUDGET_MS = 1500;

/** `more`: chunks remain; `ended`: the job succeeded or failed; `lost`: the lease is gone (cancelled, superseded, expired, or handed back). */
export type ChunkRun = 'more' | 'ended' | 'lost';

/** A lease holder's name: host, process and a random part, unique per worker or inline run. */
export function leaseOwner(role: string): string {
  return `${os.hostname().slice(0, 60)}:${process.pid}:${role}:${newId().slice(-12)}`;
}

export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs one chunk of a job `owner` has claimed, in one transaction: re-check (and extend) the
 * lease, read the job, run the kind's chunk, store its cursor and progress, commit. A lost lease
 * runs nothing. An unavailable database hands the job back to the queue; any other error ends
 * the job as failed (its work rolled back).
 */
export async function runChunk(
  db: Db,
  tenantId: string,
  id: string,
  owner: string,
  leaseMs: number,
  logger?: Logger,
): Promise<ChunkRun> {
  try {
    return await db.tx(async (trx) => {
      const now = new Date();
      if (!(await holdLease(trx, tenantId, id, owner, leaseMs, now.getTime()))) return 'lost';
      const job = (await loadRunning(trx, tenantId, id, now))!;
      const kind = jobKind(job.kind);
      if (!kind) throw new JobFailed(`job kind ${job.kind} is not known to this process`);
      const outcome = await kind.runChunk(trx, job);
      await storeChunk(trx, job, outcome, leaseMs, Date.now());
      if (!outcome.done) return 'more';
      await kind.cleanup?.(trx, job);
      return 'ended';
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    try {
      if (err instanceof Unavailable) {
        logger?.warn(
          { jobId: id, tenantId, error: message },
          'job chunk failed: database unavailable; the job goes back to the queue',
        );
        await releaseJob(db.knex, tenantId, id, owner, Date.now());
        return 'lost';
      }
      if (!(err instanceof JobFailed)) logger?.error({ jobId: id, tenantId, err }, 'job chunk failed; the job fails');
      await failJob(db, tenantId, id, owner, message, err instanceof JobFailed ? err.result : null, Date.now());
      return 'ended';
    } catch (again) {
      // The lease runs out by itself and another worker retries from the last committed chunk.
      logger?.error(
        { jobId: id, tenantId, error: again instanceof Error ? again.message : String(again) },
        'could not record a job failure',
      );
      return 'lost';
    }
  }
}

/**
 * Lets the request that enqueued a job run it for up to `budgetMs` (after the enqueuing
 * transaction has committed): it claims the job like a worker, runs chunks while the budget
 * lasts (a chunk once started runs to its end), yields to the event loop between chunks, and
 * hands the lease back if work remains, for the workers to continue at once. Answers the job as
 * it stands: `succeeded` when it finished here (the route answers 200/201/204 as before),
 * otherwise queued, running or failed (the route answers 202 Accepted with the job). A job some
 * worker already holds is answered as it is.
 */
export async function runJobInline(
  db: Db,
  tenantId: string,
  jobId: string,
  budgetMs: number,
  opts: { leaseMs?: number; logger?: Logger } = {},
): Promise<Job> {
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const owner = leaseOwner('inline');
  const deadline = Date.now() + budgetMs;
  try {
    if (await claimJob(db.knex, tenantId, jobId, owner, leaseMs, Date.now())) {
      let r: ChunkRun = 'more';
      for (;;) {
        r = await runChunk(db, tenantId, jobId, owner, leaseMs, opts.logger);
        if (r !== 'more' || Date.now() >= deadline) break;
        await yieldToEventLoop();
      }
      if (r === 'more') await releaseJob(db.knex, tenantId, jobId, owner, Date.now());
    }
  } catch (err) {
    // The job is committed: a worker runs it; the caller still answers with it.
    opts.logger?.warn(
      { jobId, tenantId, error: err instanceof Error ? err.message : String(err) },
      'inline job run stopped; workers continue it',
    );
  }
  const job = await getJob(db.knex, tenantId, jobId);
  if (!job) throw new Error(`job ${jobId} vanished`);
  return job;
}
