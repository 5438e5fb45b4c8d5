import type { Knex } from 'knex';

/**
 * Ends every browser session of a user, in the caller's transaction: SCIM deactivation and
 * deletion end them together with the change.
 */
export async function endSessionsOf(trx: Knex, tenantId: string, userId: string): Promise<number> {
  return trx('sessions').where({ tenant_id: tenantId, user_id: userId }).delete();
}

/** Ends the sessions signed in through a connection that is being disabled or deleted. */
export async function endConnectionSessions(trx: Knex, tenantId: string, connectionId: string): Promise<number> {
  return trx('sessions').where({ tenant_id: tenantId, connection_id: connectionId }).delete();
}
