import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';

/**
 * Where SCIM/SSO changes and mapping-rule changes meet (MariaDB: REPEATABLE READ, a pool of
 * connections; SQLite has one connection, so its transactions never interleave and these locks
 * are no-ops there).
 *
 * Lock order, always in this order, each held to commit:
 *   1. the tenant's mapping_locks row, as the FIRST statement of the transaction, so the
 *      InnoDB read view (taken at the first plain read) is made after the lock is granted and
 *      sees every rule change and structural change committed before;
 *        - shared: incremental syncs that touch given users: SCIM group membership changes of
 *          users, SCIM user status changes and deletions, account status changes and
 *          deletions, SSO sign-ins (claim groups);
 *        - exclusive: rule create/change/delete, each chunk of a rule sweep or reconcile, and
 *          structural SCIM group changes (a group added to or removed from another, a rename,
 *          a group created with groups as members, a group deleted), because they change the
 *          IdP group closure of users that other transactions may be computing (4d);
 *   2. the IdP group row (lockGroupForChange) or the user row (lockUser);
 *   3. users and IdP groups named as members, FOR SHARE (resolveMembers), so a membership
 *      row is never written for a user or group deleted concurrently;
 *   4. derived rows and mapping_sync (written last; never locked for reading).
 *
 * One exception to the order: a sweep or reconcile chunk runs in the job runner's transaction,
 * which holds the job's row (its lease check) before the chunk takes the mapping lock, while a
 * rule change, holding the mapping lock, supersedes the rule's older sweep by updating that
 * job's row. The two can deadlock; InnoDB rolls one back and the transaction's one retry
 * absorbs it (a chunk retried after its job was superseded finds its lease gone and stops).
 *
 * mapping_locks is apart from mapping_sync because SCIM transactions write mapping_sync: a
 * shared lock then a write on the same row is an S→X upgrade, which deadlocks two of them.
 * A structural change is only known after reading the request's members, so a SCIM group
 * change starts shared and, when it turns out structural, is rolled back and run again
 * exclusively (requireExclusive, inMappingTx).
 */

export type MappingLockMode = 'share' | 'exclusive';

function isMysql(trx: Knex): boolean {
  return trx.client.config.client === 'mysql2';
}

/** Takes the tenant's mapping lock; call it before any other statement of the transaction. */
export async function lockMapping(trx: Knex, tenantId: string, mode: MappingLockMode): Promise<void> {
  if (!isMysql(trx)) return;
  const take = () => {
    const q = trx('mapping_locks').where({ tenant_id: tenantId }).select('tenant_id');
    return mode === 'share' ? q.forShare() : q.forUpdate();
  };
  if ((await take()).length) return;
  // Tenants made after migration 008 get their row on first use; two first uses at once may
  // deadlock on the gap lock, which the transaction's retry absorbs.
  await trx('mapping_locks').insert({ tenant_id: tenantId }).onConflict('tenant_id').ignore();
  await take();
}

/** Thrown inside a shared-mode transaction that turns out to need the exclusive lock. */
export class NeedsExclusiveMappingLock extends Error {
  constructor() {
    super('the change is structural: it runs again under the exclusive mapping lock');
  }
}

export function requireExclusive(trx: Knex, mode: MappingLockMode): void {
  if (mode === 'share' && isMysql(trx)) throw new NeedsExclusiveMappingLock();
}

/**
 * Runs `fn` in one transaction that first takes the mapping lock in `mode`; a shared run that
 * finds it needs the exclusive lock is rolled back and run once more exclusively.
 */
export async function inMappingTx<T>(
  db: Db,
  tenantId: string,
  mode: MappingLockMode,
  fn: (trx: Knex.Transaction, mode: MappingLockMode) => Promise<T>,
): Promise<T> {
  try {
    return await db.tx(async (trx) => {
      await lockMapping(trx, tenantId, mode);
      return fn(trx, mode);
    });
  } catch (err) {
    if (!(err instanceof NeedsExclusiveMappingLock) || mode === 'exclusive') throw err;
    return inMappingTx(db, tenantId, 'exclusive', fn);
  }
}
