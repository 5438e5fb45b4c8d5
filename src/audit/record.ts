import type { Knex } from 'knex';
import type { Ctx } from '../context.js';
import { insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { toJson } from '../db/rows.js';

export interface AuditEntity {
  type: string;
  id: string | null;
  name?: string | null;
}

export interface AuditInput {
  event: string;
  entity: AuditEntity;
  /** Null for creations. */
  before?: unknown;
  /** Null for deletions. */
  after?: unknown;
  /** Overrides the context's actor, e.g. a mapping rule acting inside a SCIM request. */
  actor?: Ctx['actor'];
}

/**
 * Appends audit events in the caller's transaction, so a change and its record commit or roll
 * back together. Ids are time-ordered, which gives the log its order. One request may record
 * thousands of events (members added in bulk, an import): they go in as many statements as needed.
 */
export async function recordEvents(trx: Knex, ctx: Ctx, events: AuditInput[]): Promise<void> {
  if (!events.length) return;
  const at = ctx.now.getTime();
  await insertChunked(
    trx,
    'audit_events',
    events.map((e) => {
      const actor = e.actor ?? ctx.actor;
      return {
        tenant_id: ctx.tenantId,
        id: newId(),
        at,
        actor_type: actor.type,
        actor_id: actor.id,
        actor_display: actor.display?.slice(0, 255) ?? null,
        event: e.event,
        entity_type: e.entity.type,
        entity_id: e.entity.id,
        entity_name: e.entity.name?.slice(0, 255) ?? null,
        before_json: toJson(e.before),
        after_json: toJson(e.after),
        request_id: ctx.requestId,
      };
    }),
  );
}

export function recordEvent(trx: Knex, ctx: Ctx, event: AuditInput): Promise<void> {
  return recordEvents(trx, ctx, [event]);
}
