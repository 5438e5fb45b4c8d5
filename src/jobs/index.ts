/**
 * Durable jobs: long work that survives the process running it.
 *
 * Contract:
 * - A kind is registered once per process (`registerJobKind`), usually when its module loads.
 * - `enqueueJob(trx, ctx, {kind, payload, total?, key?})` writes the job in the caller's
 *   transaction: it exists exactly when the causing change commits. A `key` admits one live
 *   (queued or running) job per tenant: a newer one cancels the older with error `superseded`.
 * - After commit, the route calls `runJobInline(db, tenantId, job.id, INLINE_BUDGET_MS)`: a
 *   `succeeded` answer means the work is done (answer 200/201/204 as before, with `job` where a
 *   body is returned); anything else answers 202 Accepted with the job.
 * - Workers (worker.ts, one per process) claim queued jobs and expired leases with a conditional
 *   UPDATE, run chunk after chunk, each chunk in its own transaction that first re-checks the
 *   lease and then commits the chunk's work with its cursor and progress. A job therefore resumes
 *   after a crash from its last committed chunk, and a cancelled or superseded job runs no
 *   further chunk.
 * - `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`, `POST /api/v1/jobs/{id}/cancel` read and cancel
 *   them (management/jobs.ts).
 */
export {
  JobFailed,
  registerJobKind,
  jobKind,
  type ChunkOutcome,
  type JobKind,
  type JobProgress,
  type JobState,
  type RunningJob,
} from './registry.js';
export { cancelJob, enqueueJob, getJob, listJobs, presentJob, type Job, type NewJob } from './store.js';
export { DEFAULT_LEASE_MS, INLINE_BUDGET_MS, runJobInline } from './runner.js';
export { createJobWorker, type JobWorker, type JobWorkerOptions } from './worker.js';
export { dropJobRows, readJobRows, stageJobRows } from './staging.js';
