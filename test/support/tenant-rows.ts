import type { Knex } from 'knex';
import { dialectName } from './db.js';

/** One tenant's rows, table by table, each row as JSON, in a stable order. */
export type TenantRows = Map<string, string[]>;

/** The tables that carry tenant_id, read off the schema so that a table added later is covered too. */
export async function tenantTables(knex: Knex): Promise<string[]> {
  if (dialectName === 'sqlite') {
    const rows = (await knex.raw(
      "SELECT m.name AS t FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'tenant_id'",
    )) as { t: string }[];
    return rows.map((r) => r.t).sort();
  }
  const [rows] = (await knex.raw(
    "SELECT table_name AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND column_name = 'tenant_id'",
  )) as [{ t: string }[]];
  return rows.map((r) => r.t).sort();
}

const DELIVERY = { sent_at: undefined, attempts: undefined, last_attempt_at: undefined, last_error: undefined };

/**
 * Every row of one tenant (its `tenants` row and every row of `tables`), for asserting that a
 * request changed nothing. When a key was last used is bookkeeping, not data, and is left out;
 * so is a mail's delivery progress, which the mailer writes after an earlier request committed.
 */
export async function tenantRows(knex: Knex, tables: string[], tenantId: string): Promise<TenantRows> {
  const read = async (table: string): Promise<[string, string[]]> => {
    const rows = (await (table === 'tenants'
      ? knex(table).where({ id: tenantId })
      : knex(table).where({ tenant_id: tenantId })
    ).select()) as Record<string, unknown>[];
    return [
      table,
      rows
        .map((r) => JSON.stringify({ ...r, last_used_at: undefined, ...(table === 'mail_outbox' ? DELIVERY : {}) }))
        .sort(),
    ];
  };
  return new Map(await Promise.all(['tenants', ...tables].map(read)));
}

/** The rows gone and added between two readings, by table; empty when nothing changed. */
export function rowChanges(before: TenantRows, after: TenantRows): string {
  const changes: string[] = [];
  for (const [table, rows] of after) {
    const was = new Set(before.get(table) ?? []);
    const now = new Set(rows);
    const gone = [...was].filter((r) => !now.has(r));
    const added = rows.filter((r) => !was.has(r));
    if (gone.length || added.length) changes.push(`${table}: -${JSON.stringify(gone)} +${JSON.stringify(added)}`);
  }
  return changes.join('; ');
}
