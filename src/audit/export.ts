import type { Writable } from 'node:stream';
import type { Knex } from 'knex';
import { stringify } from 'csv-stringify/sync';
import { isoOrNull } from '../db/rows.js';
import { drained } from '../stream.js';
import { listAuditEvents, presentAuditEvent, type AuditEventRow, type AuditFilter } from './query.js';

export type ExportFormat = 'csv' | 'ndjson';

const CSV_COLUMNS = [
  'id',
  'at',
  'actorType',
  'actorId',
  'actorDisplay',
  'event',
  'entityType',
  'entityId',
  'entityName',
  'before',
  'after',
  'requestId',
] as const;

/** Rows read per query: large enough to amortise the round trip, small enough to keep memory flat. */
const CHUNK = 1000;
/**
 * Rows per write. Written text stays below V8's large-object size (128 KiB) in the common case:
 * larger strings are allocated outside the young generation and pile up until a full collection.
 */
const ROWS_PER_WRITE = 100;

function csv(rows: AuditEventRow[], header: boolean): string {
  const records = rows.map((r) => [
    r.id,
    isoOrNull(r.at),
    r.actor_type,
    r.actor_id,
    r.actor_display,
    r.event,
    r.entity_type,
    r.entity_id,
    r.entity_name,
    // Stored as JSON text already: parsing it only to print it again would double the work per row.
    r.before_json,
    r.after_json,
    r.request_id,
  ]);
  // Names and displays come from identity providers; a cell starting with `=` must not become a
  // formula in the spreadsheet an admin opens this in.
  return stringify(header ? [[...CSV_COLUMNS], ...records] : records, { escape_formulas: true });
}

function ndjson(rows: AuditEventRow[]): string {
  let out = '';
  for (const r of rows) out += `${JSON.stringify(presentAuditEvent(r))}\n`;
  return out;
}

/**
 * Writes the tenant's filtered audit log to `out`, newest first, one keyset chunk at a time and
 * no faster than `out` takes it, so memory stays flat however long the log is. Nothing is written
 * before the first chunk is read, so a failing query can still be answered as an error. Stops
 * without ending `out` if it closes early.
 */
export async function exportAuditEvents(
  knex: Knex,
  tenantId: string,
  filter: AuditFilter,
  format: ExportFormat,
  out: Writable,
): Promise<void> {
  let cursor: string | undefined;
  let header = format === 'csv';
  do {
    const page = await listAuditEvents(knex, tenantId, filter, { limit: CHUNK, cursor });
    for (let i = 0; i < page.rows.length || header; i += ROWS_PER_WRITE) {
      const rows = page.rows.slice(i, i + ROWS_PER_WRITE);
      const text = format === 'csv' ? csv(rows, header) : ndjson(rows);
      header = false;
      if (out.destroyed) return;
      if (!out.write(text) && !(await drained(out))) return;
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  out.end();
}
