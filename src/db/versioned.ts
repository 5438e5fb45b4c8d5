import type { Knex } from 'knex';
import { PreconditionFailed, type RosterError } from '../errors.js';

/**
 * Explains a version-checked write that touched no row: 412 when the row exists but at a
 * version its condition (If-Match, If-None-Match) refuses, else the caller's not-found error.
 */
export async function noRowChanged(
  trx: Knex,
  table: string,
  where: Record<string, string>,
  condition: object | undefined,
  notFound: RosterError,
  what: string,
): Promise<never> {
  if (condition !== undefined && (await trx(table).where(where).first())) {
    throw new PreconditionFailed('version_mismatch', `the ${what} was changed by another request; fetch it again`);
  }
  throw notFound;
}

/**
 * What a conditional write requires of the row's version, applied inside the UPDATE or DELETE
 * itself so that the check and the write are one atomic step: `in` lists the versions If-Match
 * accepts (empty when none of its tags is one Roster issued, so nothing matches), `notIn` those
 * If-None-Match refuses. An empty object (If-Match: *) only requires the resource to exist.
 */
export interface VersionCondition {
  in?: readonly number[];
  notIn?: readonly number[];
}

/** Adds a condition to an UPDATE or DELETE of one versioned row. */
export function whereVersion(q: Knex.QueryBuilder, cond: VersionCondition | undefined): Knex.QueryBuilder {
  if (cond?.in) q.whereIn('version', [...cond.in]);
  if (cond?.notIn?.length) q.whereNotIn('version', [...cond.notIn]);
  return q;
}
