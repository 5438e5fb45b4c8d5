import type { Knex } from 'knex';
import type { Actor, Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { currentRead } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { isoOrNull, parseJson, toJson } from '../db/rows.js';
import { Conflict, NotFound } from '../errors.js';
import { jobKind, type JobProgress, type JobState, type RunningJob } from './registry.js';

/**
 * The `jobs` table (migration 007). A job is written by `enqueueJob` in the caller's transaction,
 * like the mail outbox: it exists if and only if the change that causes it commits. Workers and
 * inline runs (runner.ts) then move it through its states holding a lease.
 */

const ERROR_MAX = 1000;
const KEY_MAX = 200;
const LIVE: JobState[] = ['queued', 'running'];

/** A job as the API shows it. */
export interface Job {
  id: string;
  kind: string;
  state: JobState;
  /** What the job works on (`mapping_rule:<id>`); null when it has none. */
  key: string | null;
  progress: JobProgress;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  result: unknown;
}

export interface NewJob {
  kind: string;
  payload: unknown;
  /** The amount of work, when known up front (progress.total). */
  total?: number | null;
  /**
   * At most one queued or running job per (tenant, key): enqueuing with a key cancels the older
   * live ones with error `superseded` (in this same transaction; a running one stops before its
   * next chunk) before writing the new one.
   */
  key?: string;
  /** An id made beforehand with `newId()`, when input was staged under it (staging.ts). */
  id?: string;
}

type Row = Record<string, unknown>;

export function presentJob(r: Row): Job {
  return {
    id: String(r.id),
    kind: String(r.kind),
    state: String(r.state) as JobState,
    key: (r.job_key as string | null) ?? null,
    progress: {
      done: Number(r.progress_done),
      total: r.progress_total === null || r.progress_total === undefined ? null : Number(r.progress_total),
    },
    createdAt: isoOrNull(r.created_at)!,
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    error: (r.error as string | null) ?? null,
    result: parseJson<unknown>(r.result_json, null),
  };
}

function truncatedError(message: string): string {
  const text = message.replace(/\s+/g, ' ').trim();
  return text.length > ERROR_MAX ? `${text.slice(0, ERROR_MAX - 1)}…` : text;
}

/** The columns that end a job, whatever its final state. */
function ended(state: JobState, now: number, error: string | null): Row {
  return { state, error, finished_at: now, updated_at: now, active_key: null, lease_owner: null, lease_until: null };
}

/**
 * Writes a job in `trx`, the caller's transaction (outbox pattern), and answers it as queued.
 * Nothing runs here: after commit, the caller may run it with `runJobInline`, and any worker
 * will claim it otherwise. The job's chunks act as `ctx.actor` and carry `ctx.requestId`.
 */
export async function enqueueJob(trx: Knex.Transaction, ctx: Ctx, job: NewJob): Promise<Job> {
  if (!jobKind(job.kind)) throw new Error(`job kind ${job.kind} is not registered`);
  if (job.key !== undefined && (job.key.length === 0 || job.key.length > KEY_MAX))
    throw new Error(`job key must be 1-${KEY_MAX} characters`);
  const now = ctx.now.getTime();
  if (job.key !== undefined) await supersede(trx, ctx.tenantId, job.key, now);
  const row = {
    tenant_id: ctx.tenantId,
    id: job.id ?? newId(),
    kind: job.kind,
    state: 'queued',
    job_key: job.key ?? null,
    active_key: job.key ?? null,
    payload_json: JSON.stringify(job.payload ?? null),
    cursor_json: null,
    progress_done: 0,
    progress_total: job.total ?? null,
    result_json: null,
    error: null,
    actor_json: JSON.stringify(ctx.actor),
    request_id: ctx.requestId,
    lease_owner: null,
    lease_until: null,
    attempts: 0,
    created_at: now,
    started_at: null,
    finished_at: null,
    updated_at: now,
  };
  await trx('jobs').insert(row);
  return presentJob(row);
}

async function supersede(trx: Knex.Transaction, tenantId: string, key: string, now: number): Promise<void> {
  const older = await currentRead(trx('jobs').where({ tenant_id: tenantId, active_key: key }).select('id', 'kind'));
  if (!older.length) return;
  await trx('jobs')
    .where({ tenant_id: tenantId, active_key: key })
    .whereIn('state', LIVE)
    .update(ended('cancelled', now, 'superseded'));
  for (const o of older) await jobKind(String(o.kind))?.cleanup?.(trx, { tenantId, id: String(o.id) });
}

/** One job of the tenant; undefined when the tenant has none with that id. */
export async function getJob(knex: Knex, tenantId: string, id: string): Promise<Job | undefined> {
  const row = await knex('jobs').where({ tenant_id: tenantId, id }).first();
  return row ? presentJob(row) : undefined;
}

// Ids are time-ordered (uuid v7): the id alone gives newest first and a unique cursor.
const NEWEST_FIRST: KeyColumn[] = [{ sql: 'id', dir: 'desc' }];

/** A page of the tenant's jobs, newest first. */
export async function listJobs(
  knex: Knex,
  tenantId: string,
  filter: { state?: JobState; kind?: string },
  page: { limit: number; cursor?: string },
): Promise<{ items: Job[]; nextCursor: string | null }> {
  const q = knex('jobs').where({ tenant_id: tenantId });
  if (filter.state !== undefined) q.andWhere('state', filter.state);
  if (filter.kind !== undefined) q.andWhere('kind', filter.kind);
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor, NEWEST_FIRST.length);
  const rows = (await keyset(q.select('*'), NEWEST_FIRST, after, page.limit)) as Row[];
  const p = pageFrom(rows, page.limit, (r) => [String(r.id)]);
  return { items: p.rows.map(presentJob), nextCursor: p.nextCursor };
}

/**
 * Cancels a queued or running job of a cancellable kind, unless its final chunk has committed:
 * a chunk holds the job's row from its lease check to its commit, so the cancel either comes
 * first (the chunk then rolls back and no further chunk runs) or finds the job finished (409).
 */
export async function cancelJob(db: Db, ctx: Ctx, id: string): Promise<Job> {
  return db.tx(async (trx) => {
    const row = await trx('jobs').where({ tenant_id: ctx.tenantId, id }).first();
    if (!row) throw new NotFound('job_not_found', 'no such job');
    const kind = jobKind(String(row.kind));
    if (!kind?.cancellable) throw new Conflict('job_not_cancellable', `a ${String(row.kind)} job cannot be cancelled`);
    const now = ctx.now.getTime();
    const n = await trx('jobs')
      .where({ tenant_id: ctx.tenantId, id })
      .whereIn('state', LIVE)
      .update(ended('cancelled', now, 'cancelled'));
    const after = await trx('jobs').where({ tenant_id: ctx.tenantId, id }).first();
    if (Number(n) !== 1) throw new Conflict('job_finished', `the job has already ${String(after?.state ?? row.state)}`);
    await kind.cleanup?.(trx, { tenantId: ctx.tenantId, id });
    return presentJob(after);
  });
}

// ---- leases: used by runner.ts and worker.ts ---------------------------------------------

/** Jobs a worker may claim: queued, or running under a lease that has expired. */
function claimableJobs(knex: Knex, kinds: string[], now: number): Knex.QueryBuilder {
  return knex('jobs')
    .where((w) =>
      w.where('state', 'queued').orWhere((w2) => w2.where('state', 'running').where('lease_until', '<', now)),
    )
    .whereIn('kind', kinds);
}

/** Tenants with a job to claim, with the creation time of their oldest such job, oldest first. */
export async function tenantsWaiting(
  knex: Knex,
  kinds: string[],
  now: number,
  limit: number,
): Promise<{ tenantId: string; oldest: number }[]> {
  if (!kinds.length) return [];
  const rows = await claimableJobs(knex, kinds, now)
    .groupBy('tenant_id')
    .select('tenant_id')
    .min({ oldest: 'created_at' })
    .orderBy('oldest')
    .limit(limit);
  return rows.map((r: Row) => ({ tenantId: String(r.tenant_id), oldest: Number(r.oldest) }));
}

/** A tenant's jobs to claim, oldest first. */
export async function claimable(
  knex: Knex,
  tenantId: string,
  kinds: string[],
  now: number,
  limit: number,
): Promise<string[]> {
  if (!kinds.length) return [];
  const rows = await claimableJobs(knex, kinds, now)
    .where('tenant_id', tenantId)
    .orderBy([
      { column: 'created_at', order: 'asc' },
      { column: 'id', order: 'asc' },
    ])
    .limit(limit)
    .select('id');
  return rows.map((r: Row) => String(r.id));
}

/**
 * Takes the lease with one conditional UPDATE: of two processes claiming the same job, the
 * second one's condition no longer holds once the first has committed, so only one wins.
 */
export async function claimJob(
  knex: Knex,
  tenantId: string,
  id: string,
  owner: string,
  leaseMs: number,
  now: number,
): Promise<boolean> {
  const n = await knex('jobs')
    .where({ tenant_id: tenantId, id })
    .where((w) =>
      w.where('state', 'queued').orWhere((w2) => w2.where('state', 'running').where('lease_until', '<', now)),
    )
    .update({
      state: 'running',
      lease_owner: owner,
      lease_until: now + leaseMs,
      attempts: knex.raw('attempts + 1'),
      started_at: knex.raw('COALESCE(started_at, ?)', [now]),
      updated_at: now,
    });
  return Number(n) === 1;
}

/**
 * The lease re-check that opens every chunk, which also extends the lease (the heartbeat): it
 * matches only while `owner` holds an unexpired lease on a job still running (not cancelled,
 * superseded or taken over). The UPDATE also locks the row until the chunk commits.
 */
export async function holdLease(
  trx: Knex.Transaction,
  tenantId: string,
  id: string,
  owner: string,
  leaseMs: number,
  now: number,
): Promise<boolean> {
  const n = await trx('jobs')
    .where({ tenant_id: tenantId, id, lease_owner: owner, state: 'running' })
    .where('lease_until', '>', now)
    .update({ lease_until: now + leaseMs, updated_at: now });
  return Number(n) === 1;
}

/** The job as its next chunk sees it; read after holdLease, so current on both dialects. */
export async function loadRunning(
  trx: Knex.Transaction,
  tenantId: string,
  id: string,
  now: Date,
): Promise<RunningJob | undefined> {
  // A locking read (on MySQL), like holdLease's UPDATE before it: the chunk's InnoDB read view is
  // then made by the kind's first plain read, after the locks the kind takes first (mapping
  // sweeps lock before reading, src/mapping/lock.ts).
  const r = await currentRead(trx('jobs').where({ tenant_id: tenantId, id })).first();
  if (!r) return undefined;
  const actor = parseJson<Actor>(r.actor_json, { type: 'system', id: null, display: 'system' });
  return {
    tenantId,
    id,
    kind: String(r.kind),
    key: (r.job_key as string | null) ?? null,
    payload: parseJson<unknown>(r.payload_json, null),
    cursor: parseJson<unknown>(r.cursor_json, null),
    progress: { done: Number(r.progress_done), total: r.progress_total === null ? null : Number(r.progress_total) },
    attempts: Number(r.attempts),
    ctx: { tenantId, actor, requestId: (r.request_id as string | null) ?? `job:${id}`, now },
  };
}

/**
 * Stores a chunk's cursor and progress in the chunk's transaction, renewing the lease from the
 * chunk's end (a chunk that ran long keeps its job); `done` ends the job.
 */
export async function storeChunk(
  trx: Knex.Transaction,
  job: RunningJob,
  outcome: { cursor: unknown; progress: { done: number; total?: number | null }; done: boolean; result?: unknown },
  leaseMs: number,
  now: number,
): Promise<void> {
  const update: Row = {
    cursor_json: toJson(outcome.cursor),
    progress_done: outcome.progress.done,
    lease_until: now + leaseMs,
    updated_at: now,
  };
  if (outcome.progress.total !== undefined) update.progress_total = outcome.progress.total;
  if (outcome.done)
    Object.assign(update, ended('succeeded', now, null), { result_json: toJson(outcome.result ?? null) });
  await trx('jobs').where({ tenant_id: job.tenantId, id: job.id }).update(update);
}

/** Ends a job as failed, if `owner` still holds it; answers whether it did. */
export async function failJob(
  db: Db,
  tenantId: string,
  id: string,
  owner: string,
  error: string,
  result: unknown,
  now: number,
): Promise<boolean> {
  return db.tx(async (trx) => {
    const n = await trx('jobs')
      .where({ tenant_id: tenantId, id, lease_owner: owner, state: 'running' })
      .update({ ...ended('failed', now, truncatedError(error)), result_json: toJson(result ?? null) });
    if (Number(n) !== 1) return false;
    const kind = (await trx('jobs').where({ tenant_id: tenantId, id }).select('kind').first())?.kind;
    await jobKind(String(kind))?.cleanup?.(trx, { tenantId, id });
    return true;
  });
}

/** Drops up to `limit` jobs that finished before `before`; answers how many it dropped. */
export async function dropFinishedJobs(knex: Knex, before: number, limit: number): Promise<number> {
  const rows = await knex('jobs')
    .where('finished_at', '<', before)
    .orderBy('finished_at')
    .limit(limit)
    .select('tenant_id', 'id');
  const byTenant = new Map<string, string[]>();
  for (const r of rows) byTenant.set(String(r.tenant_id), [...(byTenant.get(String(r.tenant_id)) ?? []), String(r.id)]);
  let n = 0;
  for (const [tenantId, ids] of byTenant)
    n += Number(
      await knex('jobs').where({ tenant_id: tenantId }).whereIn('id', ids).where('finished_at', '<', before).delete(),
    );
  return n;
}

/** Gives the job back to the queue (state queued, no lease), if `owner` still holds it. */
export async function releaseJob(knex: Knex, tenantId: string, id: string, owner: string, now: number): Promise<void> {
  await knex('jobs')
    .where({ tenant_id: tenantId, id, lease_owner: owner, state: 'running' })
    .update({ state: 'queued', lease_owner: null, lease_until: null, updated_at: now });
}
