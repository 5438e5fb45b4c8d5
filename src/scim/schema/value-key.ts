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

/** Why a userName is refused outright, if it is: spaces at either end, invisible characters. */
export function userNameProblem(s: string): string | undefined {
  if (s.length === 0) return 'userName must not be empty';
  if (s.length > 255) return 'userName must be at most 255 characters';
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
