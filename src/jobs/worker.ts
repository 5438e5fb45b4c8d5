import type { Db } from '../db/knex.js';
import type { Logger } from '../log.js';
import { registeredKinds } from './registry.js';
import { DEFAULT_LEASE_MS, leaseOwner, runChunk, yieldToEventLoop, type ChunkRun } from './runner.js';
import { dropOrphanJobRows, ORPHAN_AGE_MS } from './staging.js';
import { claimable, claimJob, dropFinishedJobs, releaseJob, tenantsWaiting } from './store.js';

/**
 * The job worker every Roster process runs (main.ts starts it; tests only when they mean to).
 * It claims one job at a time among the kinds registered in this process: a queued job, or a
 * running one whose lease has expired (its holder died). Tenants take turns: the worker serves
 * the waiting tenant it served least recently (then the one waiting longest), that tenant's
 * oldest job first, so one tenant's many jobs do not hold back another's. It runs the
 * job chunk by chunk, yielding to the event loop between chunks; each chunk re-checks and extends
 * the lease (the heartbeat). `stop()` (SIGTERM) lets the running chunk finish, hands the job
 * back to the queue and resolves.
 */
export interface JobWorker {
  /** Starts polling every `pollMs` (at once after a job ends). */
  start(): void;
  /** Claims one job and runs it until it ends or its lease is lost; false when none was free. */
  runOnce(): Promise<boolean>;
  stop(): Promise<void>;
}

export interface JobWorkerOptions {
  db: Db;
  logger: Logger;
  /** JOB_LEASE_MS: a holder silent this long loses the job to another worker. */
  leaseMs?: number;
  /** JOB_POLL_MS: how often an idle worker looks for jobs. */
  pollMs?: number;
}

const TENANTS = 100;
const CANDIDATES = 3;
/** Finished jobs stay readable this long (30 days), then the workers drop them. */
const JOB_RETENTION_MS = 30 * 86_400_000;
const DROP_BATCH = 500;

export function createJobWorker(opts: JobWorkerOptions): JobWorker {
  const { db, logger } = opts;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const pollMs = opts.pollMs ?? 1000;
  const owner = leaseOwner('worker');
  let stopping = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let lastCleanup = 0;

  async function work(tenantId: string, id: string): Promise<void> {
    logger.debug({ jobId: id, tenantId }, 'job claimed');
    let r: ChunkRun = 'more';
    while (r === 'more') {
      r = await runChunk(db, tenantId, id, owner, leaseMs, logger);
      if (r !== 'more') break;
      if (stopping) {
        await releaseJob(db.knex, tenantId, id, owner, Date.now());
        logger.info({ jobId: id, tenantId }, 'job handed back to the queue at shutdown');
        return;
      }
      await yieldToEventLoop();
    }
  }

  // When this worker last started a job of each tenant (a counter, not a clock).
  const served = new Map<string, number>();
  let turn = 0;

  async function runOnce(): Promise<boolean> {
    const kinds = registeredKinds();
    const waiting = await tenantsWaiting(db.knex, kinds, Date.now(), TENANTS);
    waiting.sort((a, b) => (served.get(a.tenantId) ?? 0) - (served.get(b.tenantId) ?? 0) || a.oldest - b.oldest);
    for (const { tenantId } of waiting) {
      for (const id of await claimable(db.knex, tenantId, kinds, Date.now(), CANDIDATES)) {
        if (stopping) return false;
        if (!(await claimJob(db.knex, tenantId, id, owner, leaseMs, Date.now()))) continue;
        served.set(tenantId, ++turn);
        await work(tenantId, id);
        return true;
      }
    }
    return false;
  }

  /** Hourly: staged rows of jobs never enqueued, and jobs past their retention. */
  async function cleanup(): Promise<void> {
    if (Date.now() - lastCleanup < ORPHAN_AGE_MS) return;
    lastCleanup = Date.now();
    const n = await dropOrphanJobRows(db.knex, Date.now() - ORPHAN_AGE_MS);
    if (n) logger.info({ rows: n }, 'dropped staged job rows of jobs never enqueued');
    let dropped = 0;
    for (let k = DROP_BATCH; k === DROP_BATCH && !stopping; dropped += k)
      k = await dropFinishedJobs(db.knex, Date.now() - JOB_RETENTION_MS, DROP_BATCH);
    if (dropped) logger.info({ jobs: dropped }, 'dropped jobs finished more than 30 days ago');
  }

  async function run(): Promise<void> {
    while (!stopping) {
      let worked = false;
      try {
        await cleanup();
        worked = await runOnce();
      } catch (err) {
        logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'job worker pass failed; retrying');
      }
      if (!worked && !stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  }

  return {
    start() {
      if (!loop && !stopping) loop = run();
    },
    runOnce,
    async stop() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
