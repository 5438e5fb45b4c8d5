import { InvalidInput } from '../../errors.js';
import type { AttributeDef } from './definitions.js';

/** Longest indexed value; longer values are compared on this prefix. */
export const VALUE_KEY_MAX = 500;

const ZERO_WIDTH_OR_FORMAT = /[\p{Cf}\p{Cc}]/u;

/** Width mapping of RFC 8265 §3.3.1 step 1: fullwidth and halfwidth forms to their decompositions. */
function widthMap(s: string): string {
  return s.replace(/[\u3000\uFF00-\uFFEF]/g, (c) => c.normalize('NFKC'));
}

/**
 * Prepares a case-insensitive string for comparison (PRECIS UsernameCaseMapped, RFC 8265 §3.3:
 * width mapping, case mapping, NFC). Accents are kept: `rené` ≠ `rene`.
 */
export function caseMappedKey(s: string): string {
  return widthMap(s).toLowerCase().normalize('NFC');
}

/** Characters as MariaDB's utf8mb4 VARCHAR(n) counts them: code points, not UTF-16 units. */
export function charLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Longest userName, and longest key of any unique name column (user_name_key, display_name_key). */
const KEY_MAX = 255;

function keyTooLong(field: string, max: number): string {
  return `${field} must be at most ${max} characters, also once case-mapped (a letter like "İ" maps to two)`;
}

/**
 * The key of a name unique per tenant, for a column of `max` characters: case mapping can make
 * it longer than the name ("İ" lower-cases to two characters), so the key is what is measured.
 * Refuses with a 400 naming `field`, the same on every database, instead of a MariaDB error.
 */
export function uniqueKey(
  field: string,
  name: string,
  max: number,
  fold: (s: string) => string = caseMappedKey,
): string {
  const key = fold(name);
  if (charLength(name) > max || charLength(key) > max)
    throw new InvalidInput('invalid_value', keyTooLong(field, max), { scimType: 'invalidValue' });
  return key;
}

/** Why a userName is refused outright, if it is: too long, spaces at either end, invisible characters. */
export function userNameProblem(s: string): string | undefined {
  if (s.length === 0) return 'userName must not be empty';
  if (charLength(s) > KEY_MAX || charLength(caseMappedKey(s)) > KEY_MAX) return keyTooLong('userName', KEY_MAX);
  if (s.trim() !== s) return 'userName must not begin or end with white space';
  if (ZERO_WIDTH_OR_FORMAT.test(s)) return 'userName must not contain control or zero-width characters';
  return undefined;
}

/**
 * The comparable text of a simple value, as stored in index columns and as computed for filter
 * literals: case-mapped unless the attribute is caseExact, booleans as `true`/`false`,
 * date-times as ISO 8601 UTC (so they order as text).
 */
export function valueKey(def: Pick<AttributeDef, 'type' | 'caseExact'>, value: unknown): string {
  let s: string;
  if (def.type === 'boolean') s = value === true || String(value).toLowerCase() === 'true' ? 'true' : 'false';
  else if (def.type === 'dateTime') {
    const ms = Date.parse(String(value));
    s = Number.isNaN(ms) ? String(value) : new Date(ms).toISOString();
  } else s = def.caseExact ? String(value).normalize('NFC') : caseMappedKey(String(value));
  return s.length > VALUE_KEY_MAX ? s.slice(0, VALUE_KEY_MAX) : s;
}
