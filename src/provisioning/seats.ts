import type { Knex } from 'knex';
import { Forbidden } from '../errors.js';
import { countUsers } from '../directory/users.js';

/**
 * Refuses a new user when the tenant is at its limit. With a limit set, the tenant row is
 * locked first so concurrent creations at the edge queue up and never exceed it; without one
 * nothing is locked.
 */
export async function ensureSeatFree(trx: Knex, tenantId: string): Promise<void> {
  const tenant = await trx('tenants').where({ id: tenantId }).select('user_limit').first();
  if (tenant?.user_limit === null || tenant?.user_limit === undefined) return;
  await trx('tenants').where({ id: tenantId }).update({ user_limit: trx.raw('user_limit') });
  const limit = Number(tenant.user_limit);
  const used = await countUsers(trx, tenantId);
  if (used >= limit) {
    throw new Forbidden('seat_limit_reached', `the tenant's user limit of ${limit} is reached (${used} seats used)`, {
      details: { seats: { used, limit } },
    });
  }
}
