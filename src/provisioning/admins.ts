import type { Knex } from 'knex';
import type { Ctx } from '../context.js';
import { recordEvent } from '../audit/record.js';
import { countActiveAdmins, type User } from '../directory/users.js';
import { Conflict } from '../errors.js';
import { removeUserGrants } from '../access/grants.js';

const isActiveAdmin = (u: User | null) => u !== null && u.role === 'admin' && u.status === 'active';

/** Serialises admin-count decisions per tenant, so two admins cannot demote each other at once. */
async function lockTenant(trx: Knex, tenantId: string): Promise<void> {
  await trx('tenants')
    .where({ id: tenantId })
    .update({ user_limit: trx.raw('user_limit') });
}

/**
 * The management API keeps at least one active admin: demoting, suspending or deleting the
 * last one is refused (409).
 */
export async function assertNotLastAdmin(trx: Knex, ctx: Ctx, before: User, after: User | null): Promise<void> {
  if (!isActiveAdmin(before) || isActiveAdmin(after)) return;
  await lockTenant(trx, ctx.tenantId);
  if ((await countActiveAdmins(trx, ctx.tenantId, before.id)) === 0) {
    throw new Conflict(
      'last_admin',
      `${before.email ?? before.userName} is the last active admin of this tenant and cannot be demoted, suspended or deleted`,
    );
  }
}

/**
 * SCIM is authoritative for identities, so its deactivation or deletion of the last admin is
 * applied; the log says so, and admin API keys remain the way back in.
 */
export async function noteAdminLoss(trx: Knex, ctx: Ctx, before: User, after: User | null): Promise<void> {
  if (!isActiveAdmin(before) || isActiveAdmin(after)) return;
  if ((await countActiveAdmins(trx, ctx.tenantId, before.id)) > 0) return;
  await recordEvent(trx, ctx, {
    event: 'tenant.no_active_admin',
    entity: { type: 'tenant', id: ctx.tenantId },
    before: { lastAdmin: { id: before.id, email: before.email } },
    after: { activeAdmins: 0 },
  });
}

/**
 * What goes with a deleted user besides their row: their own keys stop working, and the grants
 * made to them (which no foreign key reaches) are removed. Memberships cascade with the row.
 */
export async function endUserAccess(trx: Knex, tenantId: string, userId: string, now: number): Promise<void> {
  await trx('api_tokens')
    .where({ tenant_id: tenantId, user_id: userId })
    .whereNull('revoked_at')
    .update({ revoked_at: now });
  await removeUserGrants(trx, tenantId, userId);
}
