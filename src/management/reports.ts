import type { Request, Response } from 'express';
import type { AppDeps } from '../http/deps.js';
import { canManageUsers } from '../access/principal.js';
import { accessMatrix, coverage, groupMembership } from '../access/reports.js';
import { Forbidden } from '../errors.js';
import { streamTable, type TableFormat } from '../http/stream.js';
import type { Api } from './api.js';
import { instantOr } from './instant.js';

export function registerReports(api: Api, deps: AppDeps): void {
  const knex = deps.db.knex;
  const format = { enum: ['json', 'csv'], default: 'json' };
  const at = {
    type: 'string',
    format: 'date-time',
    maxLength: 64,
    description: 'Evaluate at this instant instead of now',
  };
  const table = (columns: string[]) => ({
    description: 'Streamed: `{"items":[…]}` as JSON, or CSV with a header row',
    contentType: 'application/json',
    alsoContentTypes: ['text/csv'],
    schema: {
      type: 'object',
      required: ['items'],
      properties: { items: { type: 'array', items: { type: 'object', required: columns } } },
    },
  });
  const start = (res: Response, fmt: TableFormat, name: string) => {
    res.status(200);
    if (fmt === 'csv') res.type('text/csv').set('Content-Disposition', `attachment; filename="${name}.csv"`);
    else res.type('application/json');
  };
  const guard = (req: Request) => {
    if (!canManageUsers(req.principal!, deps.catalogue))
      throw new Forbidden('not_allowed', 'only admins and user managers may read permission reports');
  };

  const matrixColumns = ['userId', 'email', 'agentId', 'agentName', 'accessType', 'level'];
  api.add({
    method: 'get',
    path: '/reports/access-matrix',
    operationId: 'reportAccessMatrix',
    summary: 'Which users can access which agents, at what level',
    tag: 'Reports',
    query: { properties: { format, at } },
    responses: { 200: table(matrixColumns) },
    handler: async (req, res, { query }) => {
      guard(req);
      const q = query as { format: TableFormat; at?: string };
      const when = instantOr(q.at, 'query.at', Date.now());
      start(res, q.format, 'access-matrix');
      await streamTable(res, q.format, matrixColumns, accessMatrix(knex, req.ctx!.tenantId, when));
    },
  });

  const membershipColumns = ['groupId', 'groupName', 'groupStatus', 'userId', 'email', 'role', 'source'];
  api.add({
    method: 'get',
    path: '/reports/group-membership',
    operationId: 'reportGroupMembership',
    summary: 'Users in each group, or groups of each user',
    tag: 'Reports',
    query: { properties: { format, by: { enum: ['group', 'user'], default: 'group' } } },
    responses: { 200: table(membershipColumns) },
    handler: async (req, res, { query }) => {
      guard(req);
      const q = query as { format: TableFormat; by: 'group' | 'user' };
      start(res, q.format, 'group-membership');
      await streamTable(res, q.format, membershipColumns, groupMembership(knex, req.ctx!.tenantId, q.by));
    },
  });

  const coverageColumns = ['section', 'id', 'name', 'detail'];
  api.add({
    method: 'get',
    path: '/reports/coverage',
    operationId: 'reportCoverage',
    summary: 'Users with no agent access, agents with no groups, empty groups, grants expiring within `days`',
    tag: 'Reports',
    query: { properties: { format, at, days: { type: 'integer', minimum: 1, maximum: 3650, default: 30 } } },
    responses: { 200: table(coverageColumns) },
    handler: async (req, res, { query }) => {
      guard(req);
      const q = query as { format: TableFormat; at?: string; days: number };
      const when = instantOr(q.at, 'query.at', Date.now());
      start(res, q.format, 'coverage');
      await streamTable(res, q.format, coverageColumns, coverage(knex, req.ctx!.tenantId, when, q.days));
    },
  });
}
