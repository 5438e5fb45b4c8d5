import type { Request } from 'express';
import type { AppDeps } from '../http/deps.js';
import type { Knex } from 'knex';
import {
  checkMany,
  decide,
  loadAgents,
  loadNames,
  loadUsers,
  type AgentAccess,
  type AgentAction,
  type CheckedAgent,
  type CheckedUser,
} from '../access/check.js';
import { describeWindow, windowState } from '../access/grant-window.js';
import { canManageUsers } from '../access/principal.js';
import { Forbidden, NotFound } from '../errors.js';
import type { Api, JsonSchema } from './api.js';
import { instantOr } from './instant.js';
import { pageOf, pageQuery } from './schemas.js';
import { chunksOf, inChunks } from '../db/batch.js';
import { decodeCursor, encodeCursor } from '../db/keyset.js';
import { liveDerivedSql } from '../mapping/live.js';

const ACTIONS: AgentAction[] = ['view', 'use', 'edit', 'delete', 'managePermissions'];

/**
 * Candidates one page of a filtered list may examine per item it may return: a page is then
 * bounded even when few candidates pass (grants ended, users suspended), and may come back short.
 */
const SCANNED_PER_RESULT = 10;

/** Users may ask about themselves; admins, admin keys and user managers about anyone. */
function assertMayAsk(req: Request, catalogue: AppDeps['catalogue'], userIds: Iterable<string>): void {
  const p = req.principal!;
  if (canManageUsers(p, catalogue)) return;
  for (const id of userIds)
    if (p.kind !== 'user' || p.user.id !== id) throw new Forbidden('not_allowed', 'you may check only your own access');
}

function present(a: AgentAccess) {
  return {
    view: a.view,
    use: a.use,
    edit: a.edit,
    delete: a.delete,
    managePermissions: a.managePermissions,
    level: a.level,
    dataSources: a.dataSources,
    reasons: a.reasons,
  };
}

export function registerAgentAccess(api: Api, deps: AppDeps): void {
  const knex = deps.db.knex;
  const at = {
    type: 'string',
    format: 'date-time',
    maxLength: 64,
    description: 'Evaluate at this instant instead of now (ISO 8601)',
  };
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
      dataSources: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'name'],
          properties: { id: { type: 'string' }, name: { type: 'string' } },
        },
      },
      reasons: {
        type: 'array',
        items: { type: 'string' },
        description: 'Sentences naming the role, group, grant window or rule behind the answer',
      },
    },
  });
  const agentRef: JsonSchema = {
    type: 'object',
    required: ['id', 'name', 'accessType'],
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      accessType: { enum: ['organization', 'groups', 'private'] },
    },
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
      const { agents, decisions } = await checkMany(
        knex,
        req.ctx!.tenantId,
        [{ userId: params.userId!, agentId: params.agentId! }],
        instantOr((query as { at?: string }).at, 'query.at', Date.now()),
      );
      if (!agents.size) throw new NotFound('agent_not_found', `no agent with id "${params.agentId}"`);
      res.json(present(decisions[0]!));
    },
  });

  const tuple = {
    type: 'object',
    required: ['userId', 'agentId', 'action'],
    additionalProperties: false,
    properties: {
      userId: { type: 'string', maxLength: 36 },
      agentId: { type: 'string', maxLength: 36 },
      action: { enum: ACTIONS },
    },
  };
  api.add({
    method: 'post',
    path: '/access/checks',
    operationId: 'checkAgentAccessBatch',
    summary: 'Up to 1,000 (user, agent, action) checks at once, answered in order',
    tag: 'Access check',
    body: {
      type: 'object',
      required: ['checks'],
      additionalProperties: false,
      properties: { checks: { type: 'array', minItems: 1, maxItems: 1000, items: tuple }, at },
    },
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
                properties: {
                  userId: { type: 'string' },
                  agentId: { type: 'string' },
                  action: { enum: ACTIONS },
                  allowed: { type: 'boolean' },
                  reasons: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
        },
      },
    },
    handler: async (req, res, { body }) => {
      const b = body as { checks: { userId: string; agentId: string; action: AgentAction }[]; at?: string };
      assertMayAsk(
        req,
        deps.catalogue,
        b.checks.map((c) => c.userId),
      );
      const { decisions } = await checkMany(knex, req.ctx!.tenantId, b.checks, instantOr(b.at, 'body.at', Date.now()));
      res.json({
        results: b.checks.map((c, i) => ({ ...c, allowed: decisions[i]![c.action], reasons: decisions[i]!.reasons })),
      });
    },
  });

  api.add({
    method: 'get',
    path: '/users/{id}/agents',
    operationId: 'listUserAgents',
    summary: 'The agents a user may use, with their level and why',
    description:
      'Paged by agent id. A page examines at most 10 × `limit` candidate agents, so it may be short, even empty, while `nextCursor` is not null.',
    tag: 'Access check',
    query: { properties: { at, ...pageQuery } },
    responses: {
      200: {
        description: 'A page of agents, ordered by id',
        schema: pageOf({
          type: 'object',
          required: ['agent', 'level', 'reasons'],
          properties: {
            agent: agentRef,
            level: { enum: ['view_use', 'edit'] },
            reasons: { type: 'array', items: { type: 'string' } },
          },
        }),
      },
    },
    handler: async (req, res, { params, query }) => {
      const q = query as { at?: string; limit: number; cursor?: string };
      assertMayAsk(req, deps.catalogue, [params.id!]);
      const tenantId = req.ctx!.tenantId;
      const users = await loadUsers(knex, tenantId, [params.id!]);
      const user = users.get(params.id!);
      if (user?.status !== 'active') return void res.json({ items: [], nextCursor: null });
      const after = q.cursor ? String(decodeCursor(q.cursor, 1)[0]) : '';
      const names = await loadNames(knex, tenantId, [user], []);
      const grantFilter = { userIds: [user.id], groupIds: [...names.groups.keys()] };
      const items: {
        agent: { id: string; name: string; accessType: string };
        level: AgentAccess['level'];
        reasons: string[];
      }[] = [];
      let nextCursor: string | null = null;
      const when = instantOr(q.at, 'query.at', Date.now());
      // Candidates with no grant in force are skipped, so read in slices until the page is full or
      // its scan budget is spent: then the page may be short, and nextCursor says where to go on.
      const budget = q.limit * SCANNED_PER_RESULT;
      let cursor = after;
      let scanned = 0;
      scan: while (scanned < budget) {
        const size = Math.min(q.limit * 2, budget - scanned);
        const ids = await candidateAgents(tenantId, user, grantFilter.groupIds, cursor, size);
        const agents = await loadAgents(knex, tenantId, ids, grantFilter);
        // The user's branch of the group tree is loaded once above; only the agents' names are new.
        const agentNames = await loadNames(knex, tenantId, [], agents.values());
        const allNames = {
          groups: names.groups,
          idpGroups: new Map([...names.idpGroups, ...agentNames.idpGroups]),
          rules: new Map([...names.rules, ...agentNames.rules]),
        };
        for (const id of ids) {
          const a = agents.get(id);
          const d = a ? decide(user, a, when, allNames) : undefined;
          if (a && d && d.level !== 'none') {
            if (items.length === q.limit) {
              nextCursor = encodeCursor([items[items.length - 1]!.agent.id]);
              break scan;
            }
            items.push({
              agent: { id: a.id, name: a.name, accessType: a.accessType },
              level: d.level,
              reasons: d.reasons,
            });
          }
          cursor = id;
          scanned++;
        }
        if (ids.length < size) break;
        if (scanned >= budget) nextCursor = encodeCursor([cursor]);
      }
      res.json({ items, nextCursor });
    },
  });

  api.add({
    method: 'get',
    path: '/agents/{id}/access',
    operationId: 'listAgentAccess',
    summary: 'Who has access to an agent and how: its grants (in force or not) and the users they reach',
    description:
      'Paged: each page carries up to `limit` grants (by id) and up to `limit` users (by id) who hold access; follow `nextCursor` until it is null and concatenate both lists. `users` lists those reached through a grant or as the creator (an organization-wide agent reaches every active user besides). A page examines at most 10 × `limit` candidate users, so `users` may be short, even empty, while `nextCursor` is not null.',
    tag: 'Access check',
    query: { properties: { at, ...pageQuery } },
    responses: {
      200: {
        description: 'A page of grants and users',
        schema: {
          type: 'object',
          required: ['agent', 'organizationWide', 'grants', 'users', 'nextCursor'],
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
                  subject: {
                    type: 'object',
                    required: ['type', 'id'],
                    properties: {
                      type: { enum: ['group', 'user'] },
                      id: { type: 'string' },
                      name: { type: ['string', 'null'] },
                    },
                  },
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
              items: {
                type: 'object',
                required: ['userId', 'email', 'level', 'reasons'],
                properties: {
                  userId: { type: 'string' },
                  email: { type: ['string', 'null'] },
                  level: { enum: ['view_use', 'edit'] },
                  reasons: { type: 'array', items: { type: 'string' } },
                },
              },
            },
            nextCursor: { type: ['string', 'null'] },
          },
        },
      },
    },
    handler: async (req, res, { params, query }) => {
      if (!canManageUsers(req.principal!, deps.catalogue))
        throw new Forbidden('not_allowed', "only admins and user managers may list an agent's access");
      const q = query as { at?: string; limit: number; cursor?: string };
      const tenantId = req.ctx!.tenantId;
      const when = instantOr(q.at, 'query.at', Date.now());
      // Each list's position: the last id shown, or the number 0 once the list is exhausted.
      const [grantsAfter, usersAfter] = q.cursor ? decodeCursor(q.cursor, 2) : ['', ''];
      const agent = (await loadAgents(knex, tenantId, [params.id!], { grantIds: [] })).get(params.id!);
      if (!agent) throw new NotFound('agent_not_found', `no agent with id "${params.id}"`);
      const grants =
        typeof grantsAfter === 'string'
          ? await grantsPage(tenantId, agent, grantsAfter, q.limit, when)
          : { items: [], last: 0 };
      const users =
        typeof usersAfter === 'string'
          ? await usersPage(tenantId, agent.id, usersAfter, q.limit, when)
          : { items: [], last: 0 };
      res.json({
        agent: { id: agent.id, name: agent.name, accessType: agent.accessType },
        organizationWide: agent.accessType === 'organization',
        grants: grants.items,
        users: users.items,
        nextCursor: grants.last === 0 && users.last === 0 ? null : encodeCursor([grants.last, users.last]),
      });
    },
  });

  /** Up to `limit` of the agent's grants after `after`, and where the next page starts (0: done). */
  const grantsPage = async (tenantId: string, head: CheckedAgent, after: string, limit: number, when: number) => {
    const ids = (
      await knex('agent_grants')
        .where({ tenant_id: tenantId, agent_id: head.id })
        .andWhere('id', '>', after)
        .whereRaw(liveDerivedSql('agent_grants'))
        .orderBy('id')
        .limit(limit + 1)
        .select('id')
    ).map((r: Record<string, unknown>) => String(r.id));
    const pageIds = ids.slice(0, limit);
    const loaded = (await loadAgents(knex, tenantId, [head.id], { grantIds: pageIds })).get(head.id);
    const list = [...(loaded?.grants ?? [])].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const subjectIds = (type: 'group' | 'user') => [
      ...new Set(list.filter((g) => g.subjectType === type).map((g) => g.subjectId)),
    ];
    const groupNames = new Map(
      (
        await knex('local_groups')
          .where({ tenant_id: tenantId })
          .whereIn('id', subjectIds('group'))
          .select('id', 'name')
      ).map((g: Record<string, unknown>) => [String(g.id), String(g.name)]),
    );
    const emails = new Map(
      (await knex('users').where({ tenant_id: tenantId }).whereIn('id', subjectIds('user')).select('id', 'email')).map(
        (u: Record<string, unknown>) => [String(u.id), (u.email as string | null) ?? null],
      ),
    );
    return {
      items: list.map((g) => ({
        id: g.id,
        subject: {
          type: g.subjectType,
          id: g.subjectId,
          name: g.subjectType === 'group' ? (groupNames.get(g.subjectId) ?? null) : (emails.get(g.subjectId) ?? null),
        },
        permission: g.permission,
        ...(describeWindow(g) ? { window: describeWindow(g) } : {}),
        inForce: windowState(g, when) === 'in_force' && head.accessType !== 'private',
        source: g.ruleId ? 'rule' : 'manual',
        ...(g.ruleId ? { ruleId: g.ruleId, idpGroupId: g.idpGroupId } : {}),
      })),
      last: ids.length > limit ? pageIds[pageIds.length - 1]! : 0,
    };
  };

  /**
   * The first `n` agents by id after `after` that `user` could reach: every agent for an admin;
   * else organization-wide ones, their own private ones and those granted to them or to one of
   * `groupIds` (their groups with ancestors). Each source is read in id order up to `n` and the
   * lists merged, so no statement carries the user's whole group tree.
   */
  const candidateAgents = async (
    tenantId: string,
    user: CheckedUser,
    groupIds: string[],
    after: string,
    n: number,
  ): Promise<string[]> => {
    const agents = knex('agents')
      .where({ tenant_id: tenantId })
      .andWhere('id', '>', after)
      .orderBy('id')
      .limit(n)
      .select('id');
    if (user.role !== 'admin')
      agents.andWhere((w) =>
        w
          .where('access_type', 'organization')
          .orWhere((p) => p.where('access_type', 'private').andWhere('created_by', user.id)),
      );
    const ids = new Set((await agents).map((r: Record<string, unknown>) => String(r.id)));
    if (user.role !== 'admin') {
      const granted = (q: (g: Knex.QueryBuilder) => void) => {
        const g = knex('agent_grants')
          .where({ tenant_id: tenantId })
          .andWhere('agent_id', '>', after)
          .distinct('agent_id')
          .orderBy('agent_id')
          .limit(n);
        q(g);
        return g;
      };
      const rows = [
        ...(await granted((g) => g.where({ subject_type: 'user', subject_id: user.id }))),
        ...(await inChunks(knex, groupIds, (part) =>
          granted((g) => g.where('subject_type', 'group').whereIn('subject_id', part)),
        )),
      ];
      for (const r of rows) ids.add(String(r.agent_id));
    }
    return [...ids].sort().slice(0, n);
  };

  /**
   * Up to `limit` users with access, by id after `after`: candidates are members of a granted
   * group or its descendants, holders of a user grant and the creator, read once per page (at most
   * `limit` × SCANNED_PER_RESULT of them) and decided in slices against only the grants on them or
   * their groups, so neither the grants nor the users of the whole agent are ever loaded. A page
   * whose budget is spent ends early (short, even empty) and says where the next one starts.
   */
  const usersPage = async (tenantId: string, agentId: string, after: string, limit: number, when: number) => {
    const items: { userId: string; email: string | null; level: AgentAccess['level']; reasons: string[] }[] = [];
    const budget = limit * SCANNED_PER_RESULT;
    const raw = await knex.raw(
      `WITH RECURSIVE down(id) AS (
         SELECT id FROM local_groups WHERE tenant_id = ? AND id IN (SELECT subject_id FROM agent_grants WHERE tenant_id = ? AND agent_id = ? AND subject_type = 'group')
         UNION
         SELECT g.id FROM down CROSS JOIN local_groups g ON g.tenant_id = ? AND g.parent_id = down.id
       ),
       candidates(user_id) AS (
         SELECT m.user_id FROM down CROSS JOIN group_members m ON m.tenant_id = ? AND m.group_id = down.id
         UNION
         SELECT subject_id FROM agent_grants WHERE tenant_id = ? AND agent_id = ? AND subject_type = 'user'
         UNION
         SELECT created_by FROM agents WHERE tenant_id = ? AND id = ? AND created_by IS NOT NULL
       )
       SELECT user_id FROM candidates WHERE user_id > ? ORDER BY user_id LIMIT ?`,
      [tenantId, tenantId, agentId, tenantId, tenantId, tenantId, agentId, tenantId, agentId, after, budget],
    );
    const rows: Record<string, unknown>[] =
      Array.isArray(raw) && Array.isArray(raw[0]) ? raw[0] : (raw as Record<string, unknown>[]);
    const candidates = rows.map((r) => String(r.user_id));
    for (const ids of chunksOf(candidates, limit)) {
      const users = await loadUsers(knex, tenantId, ids);
      const names = await loadNames(knex, tenantId, users.values(), []);
      const agent = (
        await loadAgents(knex, tenantId, [agentId], { userIds: ids, groupIds: [...names.groups.keys()] })
      ).get(agentId);
      if (!agent) return { items, last: 0 as const };
      const agentNames = await loadNames(knex, tenantId, [], [agent]);
      const allNames = {
        groups: names.groups,
        idpGroups: new Map([...names.idpGroups, ...agentNames.idpGroups]),
        rules: new Map([...names.rules, ...agentNames.rules]),
      };
      for (const id of ids) {
        const u = users.get(id);
        if (!u) continue;
        const d = decide(u, agent, when, allNames);
        if (d.level === 'none') continue;
        items.push({ userId: u.id, email: u.email, level: d.level, reasons: d.reasons });
        if (items.length === limit) return { items, last: id };
      }
    }
    return { items, last: candidates.length < budget ? (0 as const) : candidates[candidates.length - 1]! };
  };
}
