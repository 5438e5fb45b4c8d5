import type { Knex } from 'knex';
import type { Ctx } from '../context.js';

/** queued → running → succeeded | failed | cancelled; a released lease puts running back to queued. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobProgress {
  done: number;
  /** Null while the kind does not know how much work there is. */
  total: number | null;
}

/** What a chunk is handed: the job as last committed, read inside the chunk's transaction. */
export interface RunningJob<P = unknown, C = unknown> {
  tenantId: string;
  id: string;
  kind: string;
  key: string | null;
  payload: P;
  /** What the last committed chunk returned; null before the first chunk. */
  cursor: C | null;
  progress: JobProgress;
  /** How many times a worker has claimed the job (1 on the first run; more after a crash). */
  attempts: number;
  /** The enqueuer's tenant, actor and request id, with `now` = the chunk's start. */
  ctx: Ctx;
}

export interface ChunkOutcome<C = unknown, R = unknown> {
  /** Stored with the chunk's work in the same commit; the next chunk receives it. */
  cursor: C;
  /** `total` omitted keeps the stored one. Progress is what the kind says: it should only grow. */
  progress: { done: number; total?: number | null };
  /** True when this chunk was the last one: the job succeeds in the same commit. */
  done: boolean;
  /** Read back by `GET /api/v1/jobs/{id}`; stored when `done`. */
  result?: R;
}

/**
 * A kind of job. `runChunk` runs inside a transaction that the runner has opened and in which it
 * has re-checked its lease; whatever the chunk writes commits together with its cursor and
 * progress, or not at all. A chunk should do a bounded amount of work (well under a second, and
 * well under JOB_LEASE_MS) and must never wait on the network. A chunk may run again after a
 * crash (the work of an uncommitted chunk is rolled back, so it starts from the last committed
 * cursor), so it is a function of (database state, cursor).
 *
 * To fail a job for a reason its reader should see, throw `JobFailed` (with a result, e.g. a
 * report of bad rows): the chunk's work is rolled back and the job ends `failed`. A database that
 * is unavailable (src/errors.ts `Unavailable`) puts the job back in the queue to be retried; any
 * other error fails the job with its message.
 */
export interface JobKind<P = unknown, C = unknown, R = unknown> {
  /** `area.verb`, at most 64 characters, e.g. `mapping.sweep`, `import.group-members`. */
  kind: string;
  /** Whether `POST /api/v1/jobs/{id}/cancel` may cancel it before its final chunk commits. */
  cancellable: boolean;
  runChunk(trx: Knex.Transaction, job: RunningJob<P, C>): Promise<ChunkOutcome<C, R>>;
  /**
   * Optional: runs in the transaction that ends the job (succeeded, failed, cancelled or
   * superseded), e.g. to drop rows it staged in `job_rows`.
   */
  cleanup?(trx: Knex.Transaction, job: { tenantId: string; id: string }): Promise<void>;
}

/** Thrown by a chunk: the job fails with `message` as its error and `result` as its result. */
export class JobFailed extends Error {
  constructor(
    message: string,
    readonly result?: unknown,
  ) {
    super(message);
    this.name = 'JobFailed';
  }
}

const kinds = new Map<string, JobKind>();

/**
 * Makes a kind known to this process: its workers claim only jobs of kinds registered here. A
 * production kind registers itself when its module loads (the app imports every such module
 * before the worker starts). This is also the test hook: a test registers its own kinds with it
 * (test/support/jobs.ts), and a child process started by a test does so in its entry script
 * before importing src/main.ts. Registering the same object again changes nothing.
 */
export function registerJobKind<P, C, R>(k: JobKind<P, C, R>): void {
  if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(k.kind))
    throw new Error(`job kind "${k.kind}" must be 1-64 characters a-z 0-9 . _ -`);
  const known = kinds.get(k.kind);
  if (known && known !== (k as unknown as JobKind)) throw new Error(`job kind ${k.kind} registered twice`);
  kinds.set(k.kind, k as unknown as JobKind);
}

export function jobKind(kind: string): JobKind | undefined {
  return kinds.get(kind);
}

export function registeredKinds(): string[] {
  return [...kinds.keys()];
}
