/**
 * Direct SQL seeding, for sizes the API would take too long to build. Rows are written exactly
 * as Roster writes them, including the counters other reads rely on (tenants.seats_used).
 */
import type { Knex } from 'knex';
import { newId } from '../src/db/ids.js';
import { caseMappedKey } from '../src/directory/model/value-key.js';

export const SEED_CHUNK = 500;

export async function insertChunked(
  knex: Knex,
  table: string,
  rows: Record<string, unknown>[],
  size = SEED_CHUNK,
): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await knex(table).insert(rows.slice(i, i + size));
}

export async function tenantIdOf(knex: Knex, slug = 'default'): Promise<string> {
  const t = await knex('tenants').where({ slug }).first('id');
  if (!t) throw new Error(`no tenant "${slug}"`);
  return String(t.id);
}

/**
 * Inserts `count` active members named `<prefix><n>@bench.local` and takes their seats: each
 * batch of users and its `seats_used` increment commit together, as a SCIM POST would, so SCIM
 * totals (taken from the seat count) stay right. Answers the new users' ids in order.
 */
export async function seedUsers(knex: Knex, tenantId: string, count: number, prefix = 'seed'): Promise<string[]> {
  const ids: string[] = [];
  const now = Date.now();
  for (let done = 0; done < count; ) {
    const n = Math.min(SEED_CHUNK, count - done);
    const rows = Array.from({ length: n }, (_, i) => {
      const userName = `${prefix}${done + i}@bench.local`;
      const id = newId();
      ids.push(id);
      return {
        tenant_id: tenantId,
        id,
        user_name: userName,
        user_name_key: caseMappedKey(userName),
        external_id: null,
        display_name: null,
        email: userName,
        email_key: userName,
        active: true,
        status: 'active',
        role: 'member',
        template_id: null,
        crm_access: false,
        source: 'scim',
        scim_doc: JSON.stringify({ userName, active: true }),
        version: 1,
        created_at: now,
        updated_at: now,
        last_login_at: null,
      };
    });
    await knex.transaction(async (trx) => {
      await trx('users').insert(rows);
      await trx('tenants').where({ id: tenantId }).increment('seats_used', n);
    });
    done += n;
  }
  return ids;
}
