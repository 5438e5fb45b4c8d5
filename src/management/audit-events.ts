import type { AppDeps } from '../http/deps.js';
import { requireAdmin } from '../access/principal.js';
import { exportAuditEvents, type ExportFormat } from '../audit/export.js';
import { listAuditEvents, presentAuditEvent, type AuditFilter } from '../audit/query.js';
import { parseInstant } from './instant.js';
import type { Api } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

interface FilterQuery {
  event?: string;
  entityType?: string;
  entityId?: string;
  actorId?: string;
  from?: string;
  to?: string;
}

function instant(q: FilterQuery, key: 'from' | 'to'): number | undefined {
  const value = q[key];
  return value === undefined ? undefined : parseInstant(value, `query.${key}`);
}

function filterOf(q: FilterQuery): AuditFilter {
  return {
    event: q.event,
    entityType: q.entityType,
    entityId: q.entityId,
    actorId: q.actorId,
    from: instant(q, 'from'),
    to: instant(q, 'to'),
  };
}

const CONTENT_TYPES: Record<ExportFormat, string> = { csv: 'text/csv; charset=utf-8', ndjson: 'application/x-ndjson' };

export function registerAuditEvents(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const nullableString = { type: ['string', 'null'] } as const;
  const auditEvent = api.schema('AuditEvent', {
    type: 'object',
    required: ['id', 'at', 'actor', 'event', 'entity', 'before', 'after', 'requestId'],
    properties: {
      id: common.id,
      at: common.timestamp,
      actor: {
        type: 'object',
        required: ['type', 'id', 'display'],
        description: 'Who acted; display is kept so the log still reads after the actor is deleted',
        properties: {
          type: { enum: ['user', 'api_key', 'scim_token', 'rule', 'system'] },
          id: nullableString,
          display: nullableString,
        },
      },
      event: { type: 'string', examples: ['user.created'] },
      entity: {
        type: 'object',
        required: ['type', 'id', 'name'],
        properties: { type: { type: 'string' }, id: nullableString, name: nullableString },
      },
      before: { description: 'The entity before the change; null for creations' },
      after: { description: 'The entity after the change; null for deletions' },
      requestId: nullableString,
    },
  });
  const filters = {
    event: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: 'An event name, or a prefix ending in `.*` (`user.*`)',
    },
    entityType: { type: 'string', minLength: 1, maxLength: 32 },
    entityId: common.id,
    actorId: common.id,
    from: { ...common.timestamp, maxLength: 64, description: 'Events at or after this instant' },
    to: { ...common.timestamp, maxLength: 64, description: 'Events before this instant' },
  };

  api.add({
    method: 'get',
    path: '/audit-events',
    operationId: 'listAuditEvents',
    summary: 'The audit log, newest first',
    tag: 'Audit',
    query: { properties: { ...filters, ...pageQuery } },
    responses: { 200: { description: 'A page of events', schema: pageOf(auditEvent) } },
    handler: async (req, res, input) => {
      requireAdmin(req.principal!, 'read the audit log');
      const { limit, cursor, ...filter } = input.query as FilterQuery & { limit: number; cursor?: string };
      const page = await listAuditEvents(deps.db.knex, req.auth!.tenant.id, filterOf(filter), { limit, cursor });
      res.json({ items: page.rows.map(presentAuditEvent), nextCursor: page.nextCursor });
    },
  });

  api.add({
    method: 'get',
    path: '/audit-events/export',
    operationId: 'exportAuditEvents',
    summary: 'The whole filtered audit log as one download, newest first',
    description:
      'CSV with a header row (id, at, actorType, actorId, actorDisplay, event, entityType, entityId, entityName, before, after, requestId; ' +
      'before and after as JSON text), or NDJSON with one AuditEvent per line. Streamed: the log may be of any length.',
    tag: 'Audit',
    query: { properties: { format: { enum: ['csv', 'ndjson'], default: 'csv' }, ...filters } },
    responses: {
      200: { description: 'The events', contentType: 'text/csv', alsoContentTypes: ['application/x-ndjson'] },
    },
    handler: async (req, res, input) => {
      requireAdmin(req.principal!, 'export the audit log');
      const { format, ...filter } = input.query as FilterQuery & { format: ExportFormat };
      const filters = filterOf(filter);
      res.set({
        'Content-Type': CONTENT_TYPES[format],
        'Content-Disposition': `attachment; filename="audit-events.${format}"`,
      });
      // Node drops a HEAD body without pushing back, so the whole log would be read for nothing.
      if (req.method === 'HEAD') return void res.end();
      try {
        await exportAuditEvents(deps.db.knex, req.auth!.tenant.id, filters, format, res);
      } catch (err) {
        if (!res.headersSent) throw err;
        // The 200 is already on the wire: only a cut connection tells the client the file is incomplete.
        req.log.error({ err }, 'audit export failed part-way');
        res.destroy();
      }
    },
  });
}
