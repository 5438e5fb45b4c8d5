import type { Request } from 'express';
import type { AppDeps } from '../app.js';
import { checkMany, decide, loadAgents, loadNames, loadUsers, type AgentAccess, type AgentAction } from '../access/check.js';
import { describeWindow, windowState } from '../access/grant-window.js';
import { canManageUsers } from '../access/principal.js';
import { Forbidden, NotFound } from '../errors.js';
import type { Api, JsonSchema } from './api.js';
import { pageOf, pageQuery } from './schemas.js';
import { decodeCursor, encodeCursor } from '../db/keyset.js';
import { liveDerivedSql } from '../mapping/live.js';

const ACTIONS: AgentAction[] = ['view', 'use', 'edit', 'delete', 'managePermissions'];

function instant(query: { at?: string }): number {
  return query.at ? Date.parse(query.at) : Date.now();
}

/** Users may ask about themselves; admins, admin keys and user managers about anyone. */
function assertMayAsk(req: Request, catalogue: AppDeps['catalogue'], userIds: Iterable<string>): void {
  const p = req.principal!;
  if (canManageUsers(p, catalogue)) return;
  for (const id of userIds) if (p.kind !== 'user' || p.user.id !== id) throw new Forbidden('not_allowed', 'you may check only your own access');
}

function present(a: AgentAccess) {
  return { view: a.view, use: a.use, edit: a.edit, delete: a.delete, managePermissions: a.managePermissions, level: a.level, dataSources: a.dataSources, reasons: a.reasons };
}

export function registerAgentAccess(api: Api, deps: AppDeps): void {
  const knex = deps.db.knex;
  const at = { type: 'string', format: 'date-time', description: 'Evaluate at this instant instead of now (ISO 8601)' };
  const access = api.schema('AgentAccess', {
    type: 'object',
    required: ['view', 'use', 'edit', 'delete', 'managePermissions', 'level', 'dataSources', 'reasons'],
    properties: {
      view: { type: 'boolean' },
      use: { type: 'boolean' },
      edit: { type: 'boolean' },
      delete: { type: 'boolean' },
      managePermissions: { type: 'boolean' },
      level: { enum: ['none', 'view_use', 'edit'] },
      dataSources: { type: 'array', items: { type: 'object', required: ['id', 'name'], properties: { id: { type: 'string' }, name: { type: 'string' } } } },
      reasons: { type: 'array', items: { type: 'string' }, description: 'Sentences naming the role, group, grant window or rule behind the answer' },
    },
  });
  const agentRef: JsonSchema = {
    type: 'object',
    required: ['id', 'name', 'accessType'],
    properties: { id: { type: 'string' }, name: { type: 'string' }, accessType: { enum: ['organization', 'groups', 'private'] } },
  };

  api.add({
    method: 'get',
    path: '/access/agents/{agentId}/users/{userId}',
    operationId: 'checkAgentAccess',
    summary: 'What may this user do with this agent, which data sources may it retrieve from, and why',
    tag: 'Access check',
    query: { properties: { at } },
    responses: { 200: { description: 'The decision; a user with no access gets every boolean false', schema: access } },
    handler: async (req, res, { params, query }) => {
      assertMayAsk(req, deps.catalogue, [params.userId!]);
      const { agents, decisions } = await checkMany(knex, req.ctx!.tenantId, [{ userId: params.userId!, agentId: params.agentId! }], instant(query));
      if (!agents.size) throw new NotFound('agent_not_found', `no agent with id "${params.agentId}"`);
      res.json(present(decisions[0]!));
    },
  });

  const tuple = {
    type: 'object',
    required: ['userId', 'agentId', 'action'],
    additionalProperties: false,
    properties: { userId: { type: 'string', maxLength: 36 }, agentId: { type: 'string', maxLength: 36 }, action: { enum: ACTIONS } },
  };
  api.add({
    method: 'post',
    path: '/access/checks',
    operationId: 'checkAgentAccessBatch',
    summary: 'Up to 1,000 (user, agent, action) checks at once, answered in order',
    tag: 'Access check',
    body: { type: 'object', required: ['checks'], additionalProperties: false, properties: { checks: { type: 'array', minItems: 1, maxItems: 1000, items: tuple }, at } },
    responses: {
      200: {
        description: 'One result per check, in the order sent',
        schema: {
          type: 'object',
          required: ['results'],
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['userId', 'agentId', 'action', 'allowed', 'reasons'],
                properties: { userId: { type: 'string' }, agentId: { type: 'string' }, action: { enum: ACTIONS }, allowed: { type: 'boolean' }, reasons: { type: 'array', items: { type: 'string' } } },
              },
            },
          },
        },
      },
    },
    handler: async (req, res, { body }) => {
      const b = body as { checks: { userId: string; agentId: string; action: AgentAction }[]; at?: string };
      assertMayAsk(req, deps.catalogue, b.checks.map((c) => c.userId));
      const { decisions } = await checkMany(knex, req.ctx!.tenantId, b.checks, instant(b));
      res.json({ results: b.checks.map((c, i) => ({ ...c, allowed: decisions[i]![c.action], reasons: decisions[i]!.reasons })) });
    },
  });

  api.add({
    method: 'get',
    path: '/users/{id}/agents',
    operationId: 'listUserAgents',
    summary: 'The agents a user may use, with their level and why',
    tag: 'Access check',
    query: { properties: { at, ...pageQuery } },
    responses: {
      200: {
        description: 'A page of agents, ordered by id',
        schema: pageOf({
          type: 'object',
          required: ['agent', 'level', 'reasons'],
          properties: { agent: agentRef, level: { enum: ['view_use', 'edit'] }, reasons: { type: 'array', items: { type: 'string' } } },
        }),
      },
    },
    handler: async (req, res, { params, query }) => {
      const q = query as { at?: string; limit: number; cursor?: string };
      assertMayAsk(req, deps.catalogue, [params.id!]);
      const tenantId = req.ctx!.tenantId;
      const users = await loadUsers(knex, tenantId, [params.id!]);
      const user = users.get(params.id!);
      if (!user || user.status !== 'active') return void res.json({ items: [], nextCursor: null });
      const after = q.cursor ? String(decodeCursor(q.cursor, 1)[0]) : '';
      const names = await loadNames(knex, tenantId, [user], []);
      // Candidates first, so the check loads only agents the user could reach.
      const candidates = knex('agents').where({ tenant_id: tenantId }).andWhere('id', '>', after).orderBy('id').select('id');
      if (user.role !== 'admin') {
        candidates.andWhere((w) =>
          w
            .where('access_type', 'organization')
            .orWhere((p) => p.where('access_type', 'private').andWhere('created_by', user.id))
            .orWhereIn(
              'id',
              knex('agent_grants')
                .where({ tenant_id: tenantId })
                .andWhere((g) => g.where({ subject_type: 'user', subject_id: user.id }).orWhere((gg) => gg.where('subject_type', 'group').whereIn('subject_id', [...names.groups.keys(), ''])))
                .whereRaw(liveDerivedSql('agent_grants'))
                .select('agent_id'),
            ),
        );
      }
      const items: unknown[] = [];
      let nextCursor: string | null = null;
      const when = instant(q);
      // Candidates with no grant in force are skipped, so read in slices until the page is full.
      for (let offset = 0; items.length < q.limit; offset += q.limit * 2) {
        const ids = (await candidates.clone().offset(offset).limit(q.limit * 2)).map((r: Record<string, unknown>) => String(r.id));
        if (!ids.length) break;
        const agents = await loadAgents(knex, tenantId, ids);
        // The user's branch of the group tree is loaded once above; only the agents' names are new.
        const agentNames = await loadNames(knex, tenantId, [], agents.values());
        const allNames = { groups: names.groups, idpGroups: new Map([...names.idpGroups, ...agentNames.idpGroups]), rules: new Map([...names.rules, ...agentNames.rules]) };
        for (const id of ids) {
          const a = agents.get(id)!;
          const d = decide(user, a, when, allNames);
          if (d.level === 'none') continue;
          if (items.length === q.limit) {
            nextCursor = encodeCursor([String((items[items.length - 1] as { agent: { id: string } }).agent.id)]);
            break;
          }
          items.push({ agent: { id: a.id, name: a.name, accessType: a.accessType }, level: d.level, reasons: d.reasons });
        }
        if (nextCursor || ids.length < q.limit * 2) break;
      }
      res.json({ items, nextCursor });
    },
  });

  api.add({
    method: 'get',
    path: '/agents/{id}/access',
    operationId: 'listAgentAccess',
    summary: 'Who has access to an agent and how: its grants (in force or not) and the users they reach',
    tag: 'Access check',
    query: { properties: { at } },
    responses: {
      200: {
        description: 'Grants and users',
        schema: {
          type: 'object',
          required: ['agent', 'organizationWide', 'grants', 'users'],
          properties: {
            agent: agentRef,
            organizationWide: { type: 'boolean', description: 'Every active user may view and use the agent' },
            grants: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'subject', 'permission', 'inForce', 'source'],
                properties: {
                  id: { type: 'string' },
                  subject: { type: 'object', required: ['type', 'id'], properties: { type: { enum: ['group', 'user'] }, id: { type: 'string' }, name: { type: ['string', 'null'] } } },
                  permission: { enum: ['view_use', 'edit'] },
                  window: { type: 'string' },
                  inForce: { type: 'boolean' },
                  source: { enum: ['manual', 'rule'] },
                  ruleId: { type: 'string' },
                  idpGroupId: { type: 'string' },
                },
              },
            },
            users: {
              type: 'array',
              items: { type: 'object', required: ['userId', 'email', 'level', 'reasons'], properties: { userId: { type: 'string' }, email: { type: ['string', 'null'] }, level: { enum: ['view_use', 'edit'] }, reasons: { type: 'array', items: { type: 'string' } } } },
            },
          },
        },
      },
    },
    handler: async (req, res, { params, query }) => {
      if (!canManageUsers(req.principal!, deps.catalogue)) throw new Forbidden('not_allowed', "only admins and user managers may list an agent's access");
      const tenantId = req.ctx!.tenantId;
      const agents = await loadAgents(knex, tenantId, [params.id!]);
      const agent = agents.get(params.id!);
      if (!agent) throw new NotFound('agent_not_found', `no agent with id "${params.id}"`);
      const when = instant(query);
      const groupIds = agent.grants.filter((g) => g.subjectType === 'group').map((g) => g.subjectId);
      // Members of a granted group and of its descendants are reached.
      const reached = groupIds.length
        ? await knex.raw(
            `WITH RECURSIVE down(id) AS (
               SELECT id FROM local_groups WHERE tenant_id = ? AND id IN (${groupIds.map(() => '?').join(',')})
               UNION
               SELECT g.id FROM down CROSS JOIN local_groups g ON g.tenant_id = ? AND g.parent_id = down.id
             )
             SELECT DISTINCT m.user_id FROM down CROSS JOIN group_members m ON m.tenant_id = ? AND m.group_id = down.id WHERE ${liveDerivedSql('m')}`,
            [tenantId, ...groupIds, tenantId, tenantId],
          )
        : [];
      const rows: Record<string, unknown>[] = Array.isArray(reached) && Array.isArray(reached[0]) ? reached[0] : (reached as Record<string, unknown>[]);
      const userIds = new Set<string>(rows.map((r) => String(r.user_id)));
      for (const g of agent.grants) if (g.subjectType === 'user') userIds.add(g.subjectId);
      if (agent.createdBy) userIds.add(agent.createdBy);
      const users = await loadUsers(knex, tenantId, [...userIds]);
      const names = await loadNames(knex, tenantId, users.values(), [agent]);
      const groupNames = new Map(
        (groupIds.length ? await knex('local_groups').where({ tenant_id: tenantId }).whereIn('id', groupIds).select('id', 'name') : []).map((g: Record<string, unknown>) => [String(g.id), String(g.name)]),
      );
      const emails = new Map([...users.values()].map((u) => [u.id, u.email]));
      res.json({
        agent: { id: agent.id, name: agent.name, accessType: agent.accessType },
        organizationWide: agent.accessType === 'organization',
        grants: agent.grants.map((g) => ({
          id: g.id,
          subject: { type: g.subjectType, id: g.subjectId, name: g.subjectType === 'group' ? (groupNames.get(g.subjectId) ?? null) : (emails.get(g.subjectId) ?? null) },
          permission: g.permission,
          ...(describeWindow(g) ? { window: describeWindow(g) } : {}),
          inForce: windowState(g, when) === 'in_force' && agent.accessType !== 'private',
          source: g.ruleId ? 'rule' : 'manual',
          ...(g.ruleId ? { ruleId: g.ruleId, idpGroupId: g.idpGroupId } : {}),
        })),
        users: [...users.values()]
          .map((u) => ({ u, d: decide(u, agent, when, names) }))
          .filter(({ d }) => d.level !== 'none')
          .map(({ u, d }) => ({ userId: u.id, email: u.email, level: d.level, reasons: d.reasons })),
      });
    },
  });
}
