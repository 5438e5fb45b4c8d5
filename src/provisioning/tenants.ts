import type { Knex } from 'knex';
import { seedBuiltinTemplates } from '../access/templates.js';
import { insertTenant, type NewTenant, type Tenant } from '../tenants/store.js';

/** Creates a tenant with its built-in role templates: they appear together or not at all. */
export async function createTenant(db: Knex, input: NewTenant, now = Date.now()): Promise<Tenant> {
  const create = async (trx: Knex) => {
    const tenant = await insertTenant(trx, input, now);
    await seedBuiltinTemplates(trx, tenant.id, now);
    return tenant;
  };
  return db.isTransaction ? create(db) : db.transaction(create);
}
