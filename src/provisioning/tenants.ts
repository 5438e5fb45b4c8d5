import type { Knex } from 'knex';
import { seedBuiltinTemplates } from '../access/templates.js';
import { recordEvent } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { getTenant, insertTenant, type NewTenant, type Tenant } from '../tenants/store.js';

/** Creates a tenant with its built-in role templates: they appear together or not at all. */
export async function createTenant(db: Knex, input: NewTenant, now = Date.now()): Promise<Tenant> {
  const create = async (trx: Knex) => {
    const tenant = await insertTenant(trx, input, now);
    await seedBuiltinTemplates(trx, tenant.id, now);
    return tenant;
  };
  return db.isTransaction ? create(db) : db.transaction(create);
}

export interface TenantChange {
  jitProvisioning?: boolean;
  timeZone?: string;
}

/** Applies the settings an admin may change; answers the fields that changed, before and after. */
async function changeTenant(trx: Knex, tenantId: string, change: TenantChange) {
  const before = await getTenant(trx, tenantId);
  const row: Record<string, unknown> = {};
  const b: TenantChange = {};
  const a: TenantChange = {};
  if (change.jitProvisioning !== undefined && change.jitProvisioning !== before.jitProvisioning) {
    row.jit_provisioning = a.jitProvisioning = change.jitProvisioning;
    b.jitProvisioning = before.jitProvisioning;
  }
  if (change.timeZone !== undefined && change.timeZone !== before.timeZone) {
    row.time_zone = a.timeZone = change.timeZone;
    b.timeZone = before.timeZone;
  }
  if (Object.keys(row).length) await trx('tenants').where({ id: tenantId }).update(row);
  return { tenant: await getTenant(trx, tenantId), before: b, after: a };
}

/** Changes the settings an admin may change, recording what changed (nothing when nothing did). */
export async function updateTenantSettings(db: Db, ctx: Ctx, change: TenantChange): Promise<Tenant> {
  return db.tx(async (trx) => {
    const changed = await changeTenant(trx, ctx.tenantId, change);
    if (Object.keys(changed.after).length) {
      await recordEvent(trx, ctx, {
        event: 'tenant.updated',
        entity: { type: 'tenant', id: changed.tenant.id, name: changed.tenant.name },
        before: changed.before,
        after: changed.after,
      });
    }
    return changed.tenant;
  });
}
