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
