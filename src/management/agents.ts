import type { Request } from 'express';
import type { AppDeps } from '../http/deps.js';
import {
  listAgents,
  requireAgent,
  type Agent,
  type AgentChange,
  type AgentInput,
  type AgentListQuery,
} from '../access/agents.js';
import { listDataSources, type DataSource } from '../access/data-sources.js';
import { isManual, listAgentGrants, subjectNames, type Grant, type GrantListQuery } from '../access/grants.js';
import { groupNames } from '../access/local-groups.js';
import { isAdmin, requireAdmin } from '../access/principal.js';
import { Forbidden } from '../errors.js';
import { createAgent, deleteAgent, updateAgent } from '../provisioning/agents.js';
import {
  createDataSource,
  deleteDataSource,
  updateDataSource,
  type DataSourceBody,
} from '../provisioning/data-sources.js';
import { createGrant, deleteGrant, updateGrant, type GrantChange, type GrantInput } from '../provisioning/grants.js';
import type { Api } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function presentAgent(a: Agent) {
  return {
    id: a.id,
    name: a.name,
    description: a.description,
    accessType: a.accessType,
    createdBy: a.createdBy,
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt),
  };
}

export function presentGrant(g: Grant, subjectName: string | null) {
  return {
    id: g.id,
    agentId: g.agentId,
    subjectType: g.subjectType,
    groupId: g.subjectType === 'group' ? g.subjectId : null,
    userId: g.subjectType === 'user' ? g.subjectId : null,
    subjectName,
    permission: g.permission,
    startDate: g.startDate,
    endDate: g.endDate,
    timeZone: g.timeZone,
    source: isManual(g) ? ('manual' as const) : ('rule' as const),
    ruleId: isManual(g) ? null : g.ruleId,
    idpGroupId: isManual(g) ? null : g.idpGroupId,
    createdAt: iso(g.createdAt),
  };
}

export function presentDataSource(s: DataSource, names: Map<string, string>) {
  return {
    id: s.id,
    agentId: s.agentId,
    name: s.name,
    access: s.access,
    groupIds: s.groupIds,
    groups: s.groupIds.map((id) => ({ id, name: names.get(id) ?? null })),
    createdAt: iso(s.createdAt),
  };
}

const ADMINS_ONLY = "Admins only: managing an agent's permissions is for admins (seed 004).";

export function registerAgents(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const knex = deps.db.knex;
  const accessType = { enum: ['organization', 'groups', 'private'] };
  const permission = { enum: ['view_use', 'edit'] };
  const date = {
    type: ['string', 'null'],
    maxLength: 10,
    pattern: '^\\d{4}-\\d{2}-\\d{2}$',
    description: 'A local calendar day, YYYY-MM-DD, inclusive',
  };
  const timeZone = {
    type: 'string',
    minLength: 1,
    maxLength: 64,
    description: "An IANA time zone; defaults to the tenant's, stored resolved",
  };
  const agent = api.schema('Agent', {
    type: 'object',
    required: ['id', 'name', 'description', 'accessType', 'createdBy', 'createdAt', 'updatedAt'],
    properties: {
      id: common.id,
      name: { type: 'string' },
      description: { type: ['string', 'null'] },
      accessType: {
        ...accessType,
        description:
          '`organization`: every active user may view and use it; `groups`: members of granted groups (and their child groups) and granted users; `private`: its creator and admins',
      },
      createdBy: { type: ['string', 'null'], description: 'The user the agent was registered for' },
      createdAt: common.timestamp,
      updatedAt: common.timestamp,
    },
  });
  const grant = api.schema('AgentGrant', {
    type: 'object',
    required: [
      'id',
      'agentId',
      'subjectType',
      'groupId',
      'userId',
      'subjectName',
      'permission',
      'startDate',
      'endDate',
      'timeZone',
      'source',
      'ruleId',
      'idpGroupId',
      'createdAt',
    ],
    properties: {
      id: common.id,
      agentId: common.id,
      subjectType: { enum: ['group', 'user'] },
      groupId: { type: ['string', 'null'] },
      userId: { type: ['string', 'null'] },
      subjectName: { type: ['string', 'null'], description: "The group's name or the user's email" },
      permission,
      startDate: { type: ['string', 'null'] },
      endDate: { type: ['string', 'null'] },
      timeZone: { type: 'string' },
      source: { enum: ['manual', 'rule'], description: 'Rule-derived grants change only through their mapping rule' },
      ruleId: { type: ['string', 'null'] },
      idpGroupId: { type: ['string', 'null'] },
      createdAt: common.timestamp,
    },
  });
  const dataSource = api.schema('AgentDataSource', {
    type: 'object',
    required: ['id', 'agentId', 'name', 'access', 'groupIds', 'groups', 'createdAt'],
    properties: {
      id: common.id,
      agentId: common.id,
      name: { type: 'string' },
      access: {
        enum: ['all_agent_users', 'groups'],
        description: '`groups`: members of the named groups and of their descendants only',
      },
      groupIds: { type: 'array', items: { type: 'string' } },
      groups: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'name'],
          properties: { id: { type: 'string' }, name: { type: ['string', 'null'] } },
        },
      },
      createdAt: common.timestamp,
    },
  });
  const name = { type: 'string', minLength: 1, maxLength: 200 };
  const description = { type: ['string', 'null'], maxLength: 1000 };
  const groupIds = { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 36 } };
  const base = (id: string) => `${deps.config.publicBaseUrl}/api/v1/agents/${id}`;
  const presentGrants = async (tenantId: string, grants: Grant[]) => {
    const names = await subjectNames(knex, tenantId, grants);
    return grants.map((g) => presentGrant(g, names.get(g.id) ?? null));
  };
  const presentSources = async (tenantId: string, sources: DataSource[]) => {
    const names = await groupNames(
      knex,
      tenantId,
      sources.flatMap((s) => s.groupIds),
    );
    return sources.map((s) => presentDataSource(s, names));
  };
  /** Admins read every agent; a user reads the agents registered for them. */
  const readable = async (req: Request, id: string) => {
    const a = await requireAgent(knex, req.ctx!.tenantId, id);
    const p = req.principal!;
    if (!isAdmin(p) && !(p.kind === 'user' && a.createdBy === p.user.id))
      throw new Forbidden('not_allowed', `only admins and its creator may read agent "${a.name}"`);
    return a;
  };
  const adminAgent = async (req: Request, id: string, what: string) => {
    requireAdmin(req.principal!, what);
    return requireAgent(knex, req.ctx!.tenantId, id);
  };

  api.add({
    method: 'get',
    path: '/agents',
    operationId: 'listAgents',
    summary: 'Registered agents, oldest first, one page at a time',
    description: 'Admins only. A user asks `GET /users/{id}/agents` for the agents they may use.',
    tag: 'Agents',
    query: { properties: { accessType, createdBy: { type: 'string', maxLength: 36 }, ...pageQuery } },
    responses: { 200: { description: 'A page of agents', schema: pageOf(agent) } },
    handler: async (req, res, { query }) => {
      requireAdmin(req.principal!, 'list agents');
      const page = await listAgents(knex, req.ctx!.tenantId, query as AgentListQuery);
      res.json({ items: page.agents.map(presentAgent), nextCursor: page.nextCursor });
    },
  });

  api.add({
    method: 'post',
    path: '/agents',
    operationId: 'createAgent',
    summary: 'Register an agent',
    description:
      'Admins only. `createdBy` names the user the host platform registers the agent for: the creator of a private agent may use it, and may change its name and description.',
    tag: 'Agents',
    body: {
      type: 'object',
      required: ['name', 'accessType'],
      additionalProperties: false,
      properties: { name, description, accessType, createdBy: { type: 'string', minLength: 1, maxLength: 36 } },
    },
    responses: { 201: { description: 'Created', schema: agent } },
    handler: async (req, res, { body }) => {
      const a = await createAgent(deps.db, req.ctx!, req.principal!, body as AgentInput);
      res.status(201).location(base(a.id)).json(presentAgent(a));
    },
  });

  api.add({
    method: 'get',
    path: '/agents/{id}',
    operationId: 'getAgent',
    summary: 'One agent',
    tag: 'Agents',
    responses: { 200: { description: 'The agent', schema: agent } },
    handler: async (req, res, { params }) => {
      res.json(presentAgent(await readable(req, params.id!)));
    },
  });

  api.add({
    method: 'patch',
    path: '/agents/{id}',
    operationId: 'updateAgent',
    summary: "Change an agent's name, description or access type",
    description:
      "Admins change anything; the agent's creator changes its name and description. Only admins change the access type. Grants stay when an agent becomes private, and apply again if it stops being private.",
    tag: 'Agents',
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { name, description, accessType },
    },
    responses: { 200: { description: 'The agent after the change', schema: agent } },
    handler: async (req, res, { params, body }) => {
      res.json(presentAgent(await updateAgent(deps.db, req.ctx!, req.principal!, params.id!, body as AgentChange)));
    },
  });

  api.add({
    method: 'delete',
    path: '/agents/{id}',
    operationId: 'deleteAgent',
    summary: 'Delete an agent with its grants and data sources',
    description: 'Admins only.',
    tag: 'Agents',
    responses: { 204: { description: 'Deleted' } },
    handler: async (req, res, { params }) => {
      await deleteAgent(deps.db, req.ctx!, req.principal!, params.id!);
      res.status(204).end();
    },
  });

  api.add({
    method: 'get',
    path: '/agents/{id}/grants',
    operationId: 'listAgentGrants',
    summary: "An agent's grants, manual and rule-derived, oldest first",
    description: `${ADMINS_ONLY} \`GET /agents/{id}/access\` shows which grants are in force and whom they reach.`,
    tag: 'Agent grants',
    query: {
      properties: {
        source: { enum: ['manual', 'rule'] },
        groupId: { type: 'string', maxLength: 36 },
        userId: { type: 'string', maxLength: 36 },
        ...pageQuery,
      },
    },
    responses: { 200: { description: 'A page of grants', schema: pageOf(grant) } },
    handler: async (req, res, { params, query }) => {
      const a = await adminAgent(req, params.id!, "read an agent's permissions");
      const page = await listAgentGrants(knex, req.ctx!.tenantId, a.id, query as GrantListQuery);
      res.json({ items: await presentGrants(req.ctx!.tenantId, page.grants), nextCursor: page.nextCursor });
    },
  });

  api.add({
    method: 'post',
    path: '/agents/{id}/grants',
    operationId: 'createAgentGrant',
    summary: 'Grant an agent to a group or a user, optionally between two dates',
    description: `${ADMINS_ONLY} Exactly one of \`groupId\` and \`userId\`. The window runs from 00:00 on \`startDate\` to the end of \`endDate\`, local time in \`timeZone\`. A private agent takes no grants (422); nor does an archived group (422). An identical manual grant is refused (409, \`grantId\`).`,
    tag: 'Agent grants',
    body: {
      type: 'object',
      required: ['permission'],
      additionalProperties: false,
      properties: {
        groupId: { type: 'string', minLength: 1, maxLength: 36 },
        userId: { type: 'string', minLength: 1, maxLength: 36 },
        permission,
        startDate: date,
        endDate: date,
        timeZone,
      },
    },
    responses: { 201: { description: 'Created', schema: grant } },
    handler: async (req, res, { params, body }) => {
      const g = await createGrant(deps.db, req.ctx!, req.principal!, params.id!, body as GrantInput);
      res
        .status(201)
        .location(`${base(g.agentId)}/grants/${g.id}`)
        .json((await presentGrants(req.ctx!.tenantId, [g]))[0]);
    },
  });

  api.add({
    method: 'patch',
    path: '/agents/{id}/grants/{grantId}',
    operationId: 'updateAgentGrant',
    summary: "Change a grant's permission, dates (null removes one) or time zone",
    description: `${ADMINS_ONLY} A rule-derived grant changes only through its rule (409 \`rule_grant\`).`,
    tag: 'Agent grants',
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { permission, startDate: date, endDate: date, timeZone },
    },
    responses: { 200: { description: 'The grant after the change', schema: grant } },
    handler: async (req, res, { params, body }) => {
      const g = await updateGrant(deps.db, req.ctx!, req.principal!, params.id!, params.grantId!, body as GrantChange);
      res.json((await presentGrants(req.ctx!.tenantId, [g]))[0]);
    },
  });

  api.add({
    method: 'delete',
    path: '/agents/{id}/grants/{grantId}',
    operationId: 'deleteAgentGrant',
    summary: 'Remove a grant',
    description: `${ADMINS_ONLY} A rule-derived grant goes only through its rule (409 \`rule_grant\`).`,
    tag: 'Agent grants',
    responses: { 204: { description: 'Removed' } },
    handler: async (req, res, { params }) => {
      await deleteGrant(deps.db, req.ctx!, req.principal!, params.id!, params.grantId!);
      res.status(204).end();
    },
  });

  api.add({
    method: 'get',
    path: '/agents/{id}/data-sources',
    operationId: 'listAgentDataSources',
    summary: "An agent's data sources and who may retrieve from them",
    description: ADMINS_ONLY,
    tag: 'Agent data sources',
    responses: {
      200: {
        description: 'Every data source of the agent, oldest first',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: dataSource } } },
      },
    },
    handler: async (req, res, { params }) => {
      const a = await adminAgent(req, params.id!, "read an agent's data sources");
      res.json({
        items: await presentSources(req.ctx!.tenantId, await listDataSources(knex, req.ctx!.tenantId, a.id)),
      });
    },
  });

  api.add({
    method: 'post',
    path: '/agents/{id}/data-sources',
    operationId: 'createAgentDataSource',
    summary: 'Add a data source, open to all agent users or restricted to groups',
    description: `${ADMINS_ONLY} \`groupIds\` is required with access \`groups\` and refused otherwise; each must name an active group.`,
    tag: 'Agent data sources',
    body: {
      type: 'object',
      required: ['name', 'access'],
      additionalProperties: false,
      properties: { name, access: { enum: ['all_agent_users', 'groups'] }, groupIds },
    },
    responses: { 201: { description: 'Created', schema: dataSource } },
    handler: async (req, res, { params, body }) => {
      const s = await createDataSource(
        deps.db,
        req.ctx!,
        req.principal!,
        params.id!,
        body as Required<Pick<DataSourceBody, 'name' | 'access'>> & DataSourceBody,
      );
      res
        .status(201)
        .location(`${base(s.agentId)}/data-sources/${s.id}`)
        .json((await presentSources(req.ctx!.tenantId, [s]))[0]);
    },
  });

  api.add({
    method: 'patch',
    path: '/agents/{id}/data-sources/{dsId}',
    operationId: 'updateAgentDataSource',
    summary: 'Rename a data source or change who may retrieve from it',
    description: `${ADMINS_ONLY} \`groupIds\` replaces the groups; switching to \`all_agent_users\` drops them.`,
    tag: 'Agent data sources',
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { name, access: { enum: ['all_agent_users', 'groups'] }, groupIds },
    },
    responses: { 200: { description: 'The data source after the change', schema: dataSource } },
    handler: async (req, res, { params, body }) => {
      const s = await updateDataSource(
        deps.db,
        req.ctx!,
        req.principal!,
        params.id!,
        params.dsId!,
        body as DataSourceBody,
      );
      res.json((await presentSources(req.ctx!.tenantId, [s]))[0]);
    },
  });

  api.add({
    method: 'delete',
    path: '/agents/{id}/data-sources/{dsId}',
    operationId: 'deleteAgentDataSource',
    summary: 'Remove a data source',
    description: ADMINS_ONLY,
    tag: 'Agent data sources',
    responses: { 204: { description: 'Removed' } },
    handler: async (req, res, { params }) => {
      await deleteDataSource(deps.db, req.ctx!, req.principal!, params.id!, params.dsId!);
      res.status(204).end();
    },
  });
}
