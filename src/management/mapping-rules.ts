import type { AppDeps } from '../http/deps.js';
import { assertMayReadUser } from '../access/policies.js';
import { requireAdmin } from '../access/principal.js';
import { inChunks } from '../db/batch.js';
import { decodeCursor, encodeCursor } from '../db/keyset.js';
import { requireUser } from '../directory/users.js';
import { idpGroupsOfUsers } from '../mapping/engine.js';
import type { MappingRule } from '../mapping/rules.js';
import { listRules, requireRule, syncStatus, type RuleInput } from '../mapping/store.js';
import type { Request, Response } from 'express';
import type { Job } from '../jobs/index.js';
import {
  createRule,
  deleteRule,
  previewRule,
  updateRule,
  type RuleChange,
  type SweepHook,
} from '../provisioning/mapping.js';
import {
  enqueueSweep,
  liveMappingJobs,
  startReconcile,
  type ReconcileResult,
  type SweepResult,
} from '../provisioning/mapping-jobs.js';
import { jobRef, runJobForRequest } from './jobs.js';
import type { Api, JsonSchema } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function presentRule(r: MappingRule) {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    enabled: r.enabled,
    position: r.position,
    match: r.match,
    actions: r.actions,
    createdAt: iso(r.createdAt)!,
    updatedAt: iso(r.updatedAt)!,
  };
}

const NOTHING = { membershipsAdded: 0, membershipsRemoved: 0, grantsAdded: 0, grantsRemoved: 0 };

/**
 * A rule change whose sweep is a job: the job is enqueued in the change's transaction, then
 * run within the request for a short budget. Finished: the usual status with what it applied
 * and the succeeded job; not yet: 202 with the rule and its job (`{…rule, job}`).
 */
async function ruleChange(
  deps: AppDeps,
  req: Request,
  res: Response,
  status: 200 | 201,
  change: (onSweep: SweepHook) => Promise<RuleChange>,
  body: (c: RuleChange, applied: typeof NOTHING, job: Job | null) => object,
) {
  let job: Job | null = null;
  const out = await change(async (trx, sweep) => {
    job = await enqueueSweep(trx, req.ctx!, sweep);
  });
  const ran: Job | null = job ? await runJobForRequest(deps, req, job) : null;
  if (ran && ran.state !== 'succeeded') {
    res.status(202).json({ ...presentRule(out.rule), job: ran });
    return;
  }
  res.status(status).json(body(out, ran ? (ran.result as SweepResult).applied : NOTHING, ran));
}

export function registerMappingRules(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const date = { type: ['string', 'null'], maxLength: 10, pattern: '^\\d{4}-\\d{2}-\\d{2}$' };
  const match: JsonSchema = {
    type: 'object',
    required: ['source', 'field', 'operator', 'value'],
    additionalProperties: false,
    properties: {
      source: {
        enum: ['scim', 'saml', 'oidc', 'any', 'connection'],
        description:
          'scim: groups SCIM pushed; connection: groups from sign-in claims of the connection connectionId; saml/oidc: of every connection of that protocol; any: all',
      },
      connectionId: {
        type: 'string',
        minLength: 1,
        maxLength: 36,
        description: 'With source connection: the SSO connection',
      },
      field: { enum: ['id', 'externalId', 'displayName'] },
      operator: {
        enum: ['equals', 'prefix', 'glob'],
        description: 'glob: * any run, ? one character; displayName compares case-insensitively',
      },
      value: { type: 'string', minLength: 1, maxLength: 255 },
    },
  };
  const actions: JsonSchema = {
    type: 'object',
    required: ['groups', 'agents'],
    additionalProperties: false,
    properties: {
      groups: {
        type: 'array',
        maxItems: 100,
        items: {
          type: 'object',
          required: ['groupId', 'role'],
          additionalProperties: false,
          properties: { groupId: { type: 'string', maxLength: 36 }, role: { enum: ['member', 'manager'] } },
        },
      },
      agents: {
        type: 'array',
        maxItems: 100,
        items: {
          type: 'object',
          required: ['agentId', 'permission'],
          additionalProperties: false,
          properties: {
            agentId: { type: 'string', maxLength: 36 },
            permission: { enum: ['view_use', 'edit'] },
            startDate: date,
            endDate: date,
            timeZone: { type: ['string', 'null'], maxLength: 64 },
          },
        },
      },
    },
  };
  const matchRef = api.schema('RuleMatch', match);
  const actionsRef = api.schema('RuleActions', actions);
  const ruleProps = {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    description: { type: ['string', 'null'], maxLength: 1000 },
    enabled: { type: 'boolean' },
    position: { type: 'integer', minimum: 0, description: 'Evaluation and listing order' },
    match: matchRef,
    actions: actionsRef,
  };
  const input: JsonSchema = {
    type: 'object',
    required: ['name', 'enabled', 'match', 'actions'],
    additionalProperties: false,
    properties: ruleProps,
  };
  const ruleFields = {
    required: ['id', 'name', 'description', 'enabled', 'position', 'match', 'actions', 'createdAt', 'updatedAt'],
    properties: { id: common.id, ...ruleProps, createdAt: common.timestamp, updatedAt: common.timestamp },
  };
  const rule = api.schema('MappingRule', { type: 'object', ...ruleFields });
  const applied = api.schema('RuleApplied', {
    type: 'object',
    required: ['membershipsAdded', 'membershipsRemoved', 'grantsAdded', 'grantsRemoved'],
    description: 'What applying the change did, counted',
    properties: {
      membershipsAdded: { type: 'integer' },
      membershipsRemoved: { type: 'integer' },
      grantsAdded: { type: 'integer' },
      grantsRemoved: { type: 'integer' },
    },
  });
  const nullableJob = { anyOf: [jobRef, { type: 'null' }] };
  const withApplied = {
    type: 'object',
    required: ['rule', 'applied', 'job'],
    properties: {
      rule,
      applied,
      job: {
        ...nullableJob,
        description: 'The sweep that applied the change (succeeded), or null when the change derives nothing new',
      },
    },
  };
  const accepted = {
    description:
      'The change is committed and already in force for revocation (rows of older versions count for nothing); its sweep job is still running: `{…rule, job}`',
    schema: {
      type: 'object',
      required: [...ruleFields.required, 'job'],
      properties: { ...ruleFields.properties, job: jobRef },
    },
  };

  api.add({
    method: 'get',
    path: '/mapping-rules',
    operationId: 'listMappingRules',
    summary: 'Mapping rules in evaluation order',
    tag: 'Mapping rules',
    responses: {
      200: {
        description: 'Every rule',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: rule } } },
      },
    },
    handler: async (req, res) => {
      requireAdmin(req.principal!, 'read mapping rules');
      res.json({ items: (await listRules(deps.db.knex, req.ctx!.tenantId)).map(presentRule) });
    },
  });
  api.add({
    method: 'post',
    path: '/mapping-rules',
    operationId: 'createMappingRule',
    summary: 'Create a rule; it applies at once to the IdP groups that exist',
    tag: 'Mapping rules',
    body: input,
    responses: {
      201: {
        description: 'Created and applied',
        schema: { ...withApplied, properties: { ...withApplied.properties, id: common.id } },
      },
      202: accepted,
    },
    handler: async (req, res, { body }) => {
      await ruleChange(
        deps,
        req,
        res,
        201,
        (onSweep) => createRule(deps.db, req.ctx!, req.principal!, body as RuleInput, onSweep),
        (out, applied, job) => ({
          id: out.rule.id,
          rule: presentRule(out.rule),
          applied,
          job,
        }),
      );
    },
  });
  api.add({
    method: 'get',
    path: '/mapping-rules/{id}',
    operationId: 'getMappingRule',
    summary: 'One rule',
    tag: 'Mapping rules',
    responses: { 200: { description: 'The rule', schema: rule } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'read mapping rules');
      res.json(presentRule(await requireRule(deps.db.knex, req.ctx!.tenantId, params.id!)));
    },
  });
  api.add({
    method: 'patch',
    path: '/mapping-rules/{id}',
    operationId: 'updateMappingRule',
    summary: 'Change a rule (enabled included); that rule alone is recomputed',
    tag: 'Mapping rules',
    body: { type: 'object', additionalProperties: false, minProperties: 1, properties: ruleProps },
    responses: { 200: { description: 'Changed and applied', schema: withApplied }, 202: accepted },
    handler: async (req, res, { params, body }) => {
      await ruleChange(
        deps,
        req,
        res,
        200,
        (onSweep) => updateRule(deps.db, req.ctx!, req.principal!, params.id!, body as Partial<RuleInput>, onSweep),
        (out, applied, job) => ({
          rule: presentRule(out.rule),
          applied,
          job,
        }),
      );
    },
  });
  api.add({
    method: 'delete',
    path: '/mapping-rules/{id}',
    operationId: 'deleteMappingRule',
    summary: 'Delete a rule and revoke exactly what it derived',
    tag: 'Mapping rules',
    responses: {
      200: {
        description: 'Deleted; what was revoked',
        schema: { type: 'object', required: ['applied', 'job'], properties: { applied, job: nullableJob } },
      },
      202: accepted,
    },
    handler: async (req, res, { params }) => {
      await ruleChange(
        deps,
        req,
        res,
        200,
        (onSweep) => deleteRule(deps.db, req.ctx!, req.principal!, params.id!, onSweep),
        (_out, applied, job) => ({ applied, job }),
      );
    },
  });

  const derived = { type: 'array', items: { type: 'object' } };
  api.add({
    method: 'post',
    path: '/mapping-rules/preview',
    operationId: 'previewMappingRule',
    summary: 'What a new or edited rule would change; nothing is changed',
    description: 'Takes the body of POST /mapping-rules, plus `ruleId` to preview an edit of an existing rule.',
    tag: 'Mapping rules',
    body: { ...input, properties: { ...ruleProps, ruleId: { type: 'string', maxLength: 36 } } },
    responses: {
      200: {
        description: 'Matched IdP groups and per-user gains and losses',
        schema: {
          type: 'object',
          required: ['matchedGroups', 'counts', 'changes', 'truncated'],
          properties: {
            counts: {
              type: 'object',
              required: ['usersReached', 'usersChanged', 'gains', 'losses'],
              properties: {
                usersReached: { type: 'integer' },
                usersChanged: { type: 'integer' },
                gains: { type: 'integer' },
                losses: { type: 'integer' },
              },
            },
            truncated: { type: 'boolean', description: 'changes shows the first 100 users changed; counts cover all' },
            matchedGroups: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'displayName', 'source'],
                properties: {
                  id: { type: 'string' },
                  displayName: { type: 'string' },
                  externalId: { type: ['string', 'null'] },
                  source: { enum: ['scim', 'saml', 'oidc'] },
                },
              },
            },
            changes: {
              type: 'array',
              items: {
                type: 'object',
                required: ['userId', 'gains', 'loses'],
                properties: {
                  userId: { type: 'string' },
                  gains: { type: 'array', items: { type: 'string' } },
                  loses: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
        },
      },
    },
    handler: async (req, res, { body }) => {
      const { ruleId, ...rest } = body as RuleInput & { ruleId?: string };
      res.json(await previewRule(deps.db, req.ctx!, req.principal!, rest, ruleId));
    },
  });
  api.add({
    method: 'post',
    path: '/mapping-rules/reconcile',
    operationId: 'reconcileMappingRules',
    summary:
      'Recompute every derived membership and grant from scratch; reports each difference fixed (none in a healthy tenant)',
    tag: 'Mapping rules',
    responses: {
      200: {
        description: 'What was fixed',
        schema: {
          type: 'object',
          required: ['fixed', 'counts', 'differences', 'job'],
          properties: {
            job: jobRef,
            fixed: { type: 'integer' },
            counts: {
              type: 'object',
              description: "Every difference fixed, by kind (restamped: rows moved to their rule's current version)",
              additionalProperties: { type: 'integer' },
            },
            differences: {
              type: 'object',
              description: 'The first 20 differences of each kind',
              required: ['membershipsAdded', 'membershipsRemoved', 'grantsAdded', 'grantsRemoved'],
              properties: {
                membershipsAdded: derived,
                membershipsRemoved: derived,
                grantsAdded: derived,
                grantsRemoved: derived,
                membershipsRestamped: derived,
                grantsRestamped: derived,
              },
            },
          },
        },
      },
      202: {
        description:
          'A reconcile job (kind mapping.reconcile, cancellable) is running; its result, when it succeeds, is the 200 body without `job`',
        schema: jobRef,
      },
    },
    handler: async (req, res) => {
      const job = await runJobForRequest(deps, req, await startReconcile(deps.db, req.ctx!, req.principal!));
      if (job.state !== 'succeeded') {
        res.status(202).json(job);
        return;
      }
      res.json({ ...(job.result as ReconcileResult), job });
    },
  });
  api.add({
    method: 'get',
    path: '/mapping-rules/status',
    operationId: 'getMappingSyncStatus',
    summary: 'Sync status: last directory change applied, last reconcile and the drift it found',
    tag: 'Mapping rules',
    responses: {
      200: {
        description: 'The status',
        schema: {
          type: 'object',
          required: ['lastChangeAt', 'lastReconcileAt', 'lastReconcileFixed', 'jobs'],
          properties: {
            lastChangeAt: { type: ['string', 'null'] },
            lastReconcileAt: { type: ['string', 'null'] },
            lastReconcileFixed: { type: ['integer', 'null'] },
            jobs: {
              type: 'array',
              items: jobRef,
              description: 'Rule sweeps (key `mapping_rule:<id>`) and reconciles still queued or running',
            },
          },
        },
      },
    },
    handler: async (req, res) => {
      requireAdmin(req.principal!, 'read the sync status');
      const s = await syncStatus(deps.db.knex, req.ctx!.tenantId);
      const jobs = await liveMappingJobs(deps.db.knex, req.ctx!.tenantId);
      res.json({
        lastChangeAt: iso(s.lastChangeAt),
        lastReconcileAt: iso(s.lastReconcileAt),
        lastReconcileFixed: s.lastReconcileFixed,
        jobs,
      });
    },
  });
  api.add({
    method: 'get',
    path: '/users/{id}/idp-groups',
    operationId: 'listUserIdpGroups',
    summary: "A user's IdP groups, direct and through nesting, with where each came from",
    description: 'Paged by display name, then id: follow `nextCursor` until it is null.',
    tag: 'Mapping rules',
    query: { properties: { ...pageQuery } },
    responses: {
      200: {
        description: 'A page of groups',
        schema: pageOf({
          type: 'object',
          required: ['id', 'displayName', 'source', 'direct'],
          properties: {
            id: { type: 'string' },
            displayName: { type: 'string' },
            externalId: { type: ['string', 'null'] },
            source: { enum: ['scim', 'saml', 'oidc'] },
            direct: { type: 'boolean' },
          },
        }),
      },
    },
    handler: async (req, res, { params, query }) => {
      const q = query as { limit: number; cursor?: string };
      assertMayReadUser(req.principal!, deps.catalogue, params.id!);
      await requireUser(deps.db.knex, req.ctx!.tenantId, params.id!);
      const after = q.cursor ? decodeCursor(q.cursor, 2).map(String) : undefined;
      const all = (await idpGroupsOfUsers(deps.db.knex, req.ctx!.tenantId, [params.id!])).get(params.id!) ?? [];
      const order = (a: { displayName: string; id: string }, b: { displayName: string; id: string }) =>
        a.displayName.localeCompare(b.displayName) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      const seen = new Set<string>();
      const rest = all
        .filter(
          (g) =>
            !seen.has(g.id) && seen.add(g.id) && (!after || order(g, { displayName: after[0]!, id: after[1]! }) > 0),
        )
        .sort(order);
      const page = rest.slice(0, q.limit);
      const direct = new Set(
        (
          await inChunks(
            deps.db.knex,
            page.map((g) => g.id),
            (c) =>
              deps.db
                .knex('idp_group_members')
                .where({ tenant_id: req.ctx!.tenantId, member_id: params.id!, member_type: 'User' })
                .whereIn('group_id', c)
                .select('group_id'),
          )
        ).map((r) => String(r.group_id)),
      );
      const items = page.map((g) => ({
        id: g.id,
        displayName: g.displayName,
        externalId: g.externalId,
        source: g.source,
        direct: direct.has(g.id),
      }));
      const last = page[page.length - 1];
      res.json({ items, nextCursor: rest.length > q.limit && last ? encodeCursor([last.displayName, last.id]) : null });
    },
  });
}
