import type { Knex } from 'knex';
import type { Actor } from '../context.js';
import { escapeLike } from '../db/dialect.js';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { isoOrNull, parseJson } from '../db/rows.js';

export interface AuditFilter {
  /** Exact, or a prefix when it ends in `.*` (`user.*`). */
  event?: string;
  entityType?: string;
  entityId?: string;
  actorId?: string;
  /** Epoch ms, inclusive. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
}

export type AuditEventRow = Record<string, unknown>;

// Ids are time-ordered (uuid v7), so the id alone gives newest-first and a unique cursor.
const NEWEST_FIRST: KeyColumn[] = [{ sql: 'id', dir: 'desc' }];

function filtered(knex: Knex, tenantId: string, f: AuditFilter): Knex.QueryBuilder {
  const q = knex('audit_events').where('tenant_id', tenantId);
  if (f.event !== undefined) {
    if (f.event.endsWith('.*')) q.andWhereRaw(`event LIKE ? ESCAPE '!'`, [`${escapeLike(f.event.slice(0, -1))}%`]);
    else q.andWhere('event', f.event);
  }
  if (f.entityType !== undefined) q.andWhere('entity_type', f.entityType);
  if (f.entityId !== undefined) q.andWhere('entity_id', f.entityId);
  if (f.actorId !== undefined) q.andWhere('actor_id', f.actorId);
  if (f.from !== undefined) q.andWhere('at', '>=', f.from);
  if (f.to !== undefined) q.andWhere('at', '<', f.to);
  return q;
}

/** One page of the tenant's audit log, newest first; the cursor is one this function returned. */
export async function listAuditEvents(
  knex: Knex,
  tenantId: string,
  filter: AuditFilter,
  page: { limit: number; cursor?: string },
): Promise<{ rows: AuditEventRow[]; nextCursor: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor, NEWEST_FIRST.length);
  const rows = (await keyset(
    filtered(knex, tenantId, filter).select('*'),
    NEWEST_FIRST,
    after,
    page.limit,
  )) as AuditEventRow[];
  return pageFrom(rows, page.limit, (r) => [String(r.id)]);
}

export function presentAuditEvent(r: AuditEventRow) {
  return {
    id: String(r.id),
    at: isoOrNull(r.at)!,
    actor: {
      type: r.actor_type as Actor['type'],
      id: (r.actor_id as string | null) ?? null,
      display: (r.actor_display as string | null) ?? null,
    },
    event: String(r.event),
    entity: {
      type: String(r.entity_type),
      id: (r.entity_id as string | null) ?? null,
      name: (r.entity_name as string | null) ?? null,
    },
    before: parseJson<unknown>(r.before_json, null),
    after: parseJson<unknown>(r.after_json, null),
    requestId: (r.request_id as string | null) ?? null,
  };
}
