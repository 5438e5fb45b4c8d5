import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { currentRead } from '../db/dialect.js';
import { toMs } from '../db/rows.js';
import { NotFound } from '../errors.js';

/**
 * Bindings: after a first sign-in through a connection, (connection, subject) names the user.
 * Sign-in matches on it before anything editable (email, userName), so changing a user's
 * email never moves their sign-ins to someone else.
 */

export interface Binding {
  connectionId: string;
  subject: string;
  createdAt: number;
}

const hashOf = (subject: string) => createHash('sha256').update(subject, 'utf8').digest('hex');

/** The user a subject is bound to through this connection, if any (a current read: a binding committed meanwhile counts). */
export async function boundUser(
  trx: Knex,
  tenantId: string,
  connectionId: string,
  subject: string,
): Promise<string | undefined> {
  const row = await currentRead(
    trx('sso_bindings')
      .where({ tenant_id: tenantId, connection_id: connectionId, subject_hash: hashOf(subject) })
      .first('user_id'),
  );
  return row ? String(row.user_id) : undefined;
}

/** Whether the user is bound to some other subject through this connection. */
export async function isBoundThrough(
  trx: Knex,
  tenantId: string,
  connectionId: string,
  userId: string,
): Promise<boolean> {
  return Boolean(
    await currentRead(
      trx('sso_bindings').where({ tenant_id: tenantId, connection_id: connectionId, user_id: userId }).first('user_id'),
    ),
  );
}

/**
 * Binds a subject to a user. Two first sign-ins at once may race (the same identity, or two
 * identities for one user): the loser's insert is ignored, and it reads back who holds the
 * subject (the caller refuses when that is not its user, or nobody).
 */
export async function bind(
  trx: Knex,
  tenantId: string,
  connectionId: string,
  subject: string,
  userId: string,
  now: number,
): Promise<string | undefined> {
  await trx('sso_bindings')
    .insert({
      tenant_id: tenantId,
      connection_id: connectionId,
      subject_hash: hashOf(subject),
      subject: subject.slice(0, 1024),
      user_id: userId,
      created_at: now,
    })
    .onConflict()
    .ignore();
  return boundUser(trx, tenantId, connectionId, subject);
}

export async function bindingsOf(db: Knex, tenantId: string, userId: string): Promise<Binding[]> {
  const rows = await db('sso_bindings')
    .where({ tenant_id: tenantId, user_id: userId })
    .orderBy('created_at')
    .orderBy('connection_id');
  return rows.map((r: Record<string, unknown>) => ({
    connectionId: String(r.connection_id),
    subject: String(r.subject),
    createdAt: toMs(r.created_at)!,
  }));
}

/** Removes a user's binding through a connection, so their next sign-in there matches anew. */
export async function unbind(trx: Knex, tenantId: string, userId: string, connectionId: string): Promise<Binding> {
  const found = (await bindingsOf(trx, tenantId, userId)).find((b) => b.connectionId === connectionId);
  if (!found)
    throw new NotFound('binding_not_found', `the user has no sign-in binding through connection "${connectionId}"`);
  await trx('sso_bindings').where({ tenant_id: tenantId, connection_id: connectionId, user_id: userId }).delete();
  return found;
}

/** Removes every binding made through a connection, when its IdP changes; answers how many went. */
export async function unbindConnection(trx: Knex, tenantId: string, connectionId: string): Promise<number> {
  return trx('sso_bindings').where({ tenant_id: tenantId, connection_id: connectionId }).delete();
}
