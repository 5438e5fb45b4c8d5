import { InvalidInput } from '../../errors.js';
import { commonAttributes, groupSchema, userSchema, type AttributeDef } from './definitions.js';
import { charLength } from './value-key.js';

/**
 * What one SCIM value may hold, checked at the edge before any database work so that a request
 * costs in proportion to what an IdP really sends, and so both databases answer the same 400
 * (MariaDB would refuse a long key with an error, SQLite would store it). Okta and Entra send a
 * handful of emails, phone numbers or addresses per user and strings well under these lengths.
 * The README's SCIM "Limits" table states them.
 */
export const SCIM_LIMITS = {
  /** Values of one multi-valued attribute of a user (emails, phoneNumbers, addresses, roles, …). */
  valuesPerAttribute: 100,
  /**
   * Group members named by one request: a POST or PUT member list, or the members a PATCH adds,
   * replaces or removes, all operations together; also the most members a group may have for a
   * replace or remove of all its members. Okta and Entra send membership as deltas (Okta pushes
   * changes, Entra a few members per PATCH); 1,000 is the management API's own limit per request.
   */
  membersPerRequest: 1000,
  /** userName, externalId and a group's displayName: VARCHAR(255) columns, their case-mapped keys too. */
  keyLength: 255,
  /** An email address, as the `email` column holds it (RFC 5321 allows less). */
  emailLength: 320,
  /** Any other string (display names, titles, address parts, phone numbers, …). */
  stringLength: 1024,
  /** A reference (photos, profileUrl, $ref): long URLs stay under it. */
  referenceLength: 2048,
  /** A binary value (x509Certificates): a base64 DER certificate with a long chain fits. */
  binaryLength: 16384,
} as const;

function named(list: readonly AttributeDef[] | undefined, name: string): AttributeDef {
  const found = list?.find((a) => a.name === name);
  if (!found) throw new Error(`no attribute ${name}`);
  return found;
}

/** Strings stored in their own columns; sub-attribute definitions are never copied, so identity holds. */
const COLUMN_LENGTHS = new Map<AttributeDef, number>([
  [named(userSchema.attributes, 'userName'), SCIM_LIMITS.keyLength],
  [named(commonAttributes, 'externalId'), SCIM_LIMITS.keyLength],
  [named(groupSchema.attributes, 'displayName'), SCIM_LIMITS.keyLength],
  [named(named(userSchema.attributes, 'emails').subAttributes, 'value'), SCIM_LIMITS.emailLength],
]);

/** The most characters (code points, as VARCHAR counts them) a string attribute may hold. */
function maxLengthOf(def: AttributeDef): number {
  const column = COLUMN_LENGTHS.get(def);
  if (column !== undefined) return column;
  if (def.type === 'reference') return SCIM_LIMITS.referenceLength;
  if (def.type === 'binary') return SCIM_LIMITS.binaryLength;
  return SCIM_LIMITS.stringLength;
}

export function checkLength(def: AttributeDef, value: string, where: string): string {
  const max = maxLengthOf(def);
  if (value.length > max && charLength(value) > max) {
    throw new InvalidInput('invalid_value', `${where} must be at most ${max} characters, got ${charLength(value)}`, {
      scimType: 'invalidValue',
    });
  }
  return value;
}

/** Refuses more members than one request may name, naming `members` and the cap. */
export function checkMemberCount(count: number, where = 'members'): void {
  if (count > SCIM_LIMITS.membersPerRequest) {
    throw new InvalidInput(
      'too_many_members',
      `${where} names ${count} members; at most ${SCIM_LIMITS.membersPerRequest} are accepted per request: send the rest in further PATCH requests`,
      { scimType: 'invalidValue' },
    );
  }
}

/**
 * Refuses more values for a multi-valued attribute than one user may hold, naming it and the cap.
 * Group members, rows of their own, have a cap per request instead (a group may hold more).
 */
export function checkValueCount(def: AttributeDef, count: number, where: string): void {
  if (!def.multiValued) return;
  if (def.name === 'members') {
    checkMemberCount(count, where);
    return;
  }
  if (count > SCIM_LIMITS.valuesPerAttribute) {
    throw new InvalidInput(
      'too_many_values',
      `${where} holds ${count} values; at most ${SCIM_LIMITS.valuesPerAttribute} are accepted per attribute`,
      {
        scimType: 'invalidValue',
      },
    );
  }
}
