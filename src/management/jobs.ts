import type { Request } from 'express';
import type { AppDeps } from '../http/deps.js';
import { requireAdmin } from '../access/principal.js';
import { NotFound } from '../errors.js';
import { INLINE_BUDGET_MS, runJobInline } from '../jobs/runner.js';
import { cancelJob, getJob, listJobs, type Job } from '../jobs/store.js';
import type { JobState } from '../jobs/registry.js';
import type { Api, JsonSchema } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

/** The `Job` schema, for responses that carry a job (`{…rule, job}`, a 202 body). */
export const jobRef: JsonSchema = { $ref: '#/components/schemas/Job' };

/**
 * Runs a job the request has just enqueued (after its transaction committed) for up to
 * INLINE_BUDGET_MS. Answer the usual 200/201/204 when the answer's state is `succeeded`,
 * otherwise 202 with the job.
 */
export function runJobForRequest(deps: AppDeps, req: Request, job: Job): Promise<Job> {
  return runJobInline(deps.db, req.ctx!.tenantId, job.id, INLINE_BUDGET_MS, {
    leaseMs: deps.config.jobLeaseMs,
    logger: req.log,
  });
}

const STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function registerJobs(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const nullableTime = { type: ['string', 'null'], format: 'date-time' };
  const job = api.schema('Job', {
    type: 'object',
    required: ['id', 'kind', 'state', 'key', 'progress', 'createdAt', 'startedAt', 'finishedAt', 'error', 'result'],
    properties: {
      id: common.id,
      kind: { type: 'string', examples: ['import.group-members'] },
      state: { enum: STATES },
      key: {
        type: ['string', 'null'],
        description: 'What the job works on (e.g. `mapping_rule:<id>`): one queued or running job per key',
      },
      progress: {
        type: 'object',
        required: ['done', 'total'],
        properties: {
          done: { type: 'integer', minimum: 0 },
          total: { type: ['integer', 'null'], description: 'Null while unknown' },
        },
      },
      createdAt: common.timestamp,
      startedAt: nullableTime,
      finishedAt: nullableTime,
      error: {
        type: ['string', 'null'],
        description: '`superseded` when a newer job with the same key replaced it, `cancelled` when cancelled',
      },
      result: { description: "What the job produced, by kind (an import's report); null until it ends" },
    },
  });

  api.add({
    method: 'get',
    path: '/jobs',
    operationId: 'listJobs',
    summary: 'Jobs, newest first',
    tag: 'Jobs',
    query: {
      properties: { state: { enum: STATES }, kind: { type: 'string', minLength: 1, maxLength: 64 }, ...pageQuery },
    },
    responses: { 200: { description: 'A page of jobs', schema: pageOf(job) } },
    handler: async (req, res, { query }) => {
      requireAdmin(req.principal!, 'read jobs');
      const { state, kind, limit, cursor } = query as {
        state?: JobState;
        kind?: string;
        limit: number;
        cursor?: string;
      };
      res.json(await listJobs(deps.db.knex, req.ctx!.tenantId, { state, kind }, { limit, cursor }));
    },
  });

  api.add({
    method: 'get',
    path: '/jobs/{id}',
    operationId: 'getJob',
    summary: 'One job: state, progress, result',
    tag: 'Jobs',
    responses: { 200: { description: 'The job', schema: job } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'read jobs');
      const found = await getJob(deps.db.knex, req.ctx!.tenantId, params.id!);
      if (!found) throw new NotFound('job_not_found', 'no such job');
      res.json(found);
    },
  });

  api.add({
    method: 'post',
    path: '/jobs/{id}/cancel',
    operationId: 'cancelJob',
    summary: 'Cancel a job before its final chunk commits',
    description:
      'Only kinds that can be cancelled (imports before they apply; reconcile). 409 when the kind cannot be cancelled or the job has already ended.',
    tag: 'Jobs',
    responses: { 200: { description: 'The cancelled job', schema: job } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'cancel jobs');
      res.json(await cancelJob(deps.db, req.ctx!, params.id!));
    },
  });
}
