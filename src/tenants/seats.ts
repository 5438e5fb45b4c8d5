import type { Knex } from 'knex';
import { Forbidden } from '../errors.js';

export interface Seats {
  used: number;
  /** Null: no limit. */
  limit: number | null;
}

export async function seatsOf(db: Knex, tenantId: string): Promise<Seats> {
  const row = await db('tenants').where({ id: tenantId }).select('seats_used', 'user_limit').first();
  return {
    used: Number(row?.seats_used ?? 0),
    limit: row?.user_limit === null || row?.user_limit === undefined ? null : Number(row.user_limit),
  };
}

/**
 * Takes a seat for a user about to be created, or refuses at the limit. One conditional UPDATE
 * both checks and reserves: it evaluates the tenant row's latest committed state under its
 * row lock, so concurrent creations at the edge queue up and never exceed the limit (a count
 * of users read inside a MySQL REPEATABLE READ transaction could be a stale snapshot).
 */
export async function takeSeat(trx: Knex, tenantId: string): Promise<void> {
  const taken = await trx('tenants')
    .where({ id: tenantId })
    .andWhere((q) => q.whereNull('user_limit').orWhere('seats_used', '<', trx.ref('user_limit')))
    .increment('seats_used', 1);
  if (taken === 1) return;
  const seats = await seatsOf(trx, tenantId);
  throw new Forbidden(
    'seat_limit_reached',
    `the tenant's user limit of ${seats.limit} is reached (${seats.used} seats used)`,
    { details: { seats } },
  );
}

/** Frees the seat of a user being deleted. */
export async function releaseSeat(trx: Knex, tenantId: string): Promise<void> {
  await trx('tenants').where({ id: tenantId }).decrement('seats_used', 1);
}
