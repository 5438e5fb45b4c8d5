import type { AttributeDef } from '../../directory/model/definitions.js';
import type { ResolvedPath } from '../../directory/model/registry.js';
import { valueKey } from '../../directory/model/value-key.js';
import type { CompareOp, Filter, FilterValue } from './ast.js';
import { filterError } from './lexer.js';
import { booleanOf, parseDateTime } from './parser.js';

/**
 * Whether one element of a multi-valued attribute (an email, a member) satisfies the inner
 * filter of a value path such as `members[value eq "x"]`; its paths name sub-attributes of the
 * element. Values are compared as `valueKey` prepares them, the way the SQL index compares them,
 * so an element matches here exactly when its row would match there.
 */
export function matchesElement(filter: Filter, element: Record<string, unknown>): boolean {
  switch (filter.kind) {
    case 'and':
      return matchesElement(filter.left, element) && matchesElement(filter.right, element);
    case 'or':
      return matchesElement(filter.left, element) || matchesElement(filter.right, element);
    case 'not':
      return !matchesElement(filter.filter, element);
    case 'present':
      return isPresent(subValue(element, filter.path));
    case 'compare':
      return compareValue(filter.path.sub ?? filter.path.attr, filter.op, subValue(element, filter.path), filter.value);
    case 'valuePath':
      // The parser never nests value paths; an element has no multi-valued attributes to walk.
      throw new Error('matchesElement: a value path inside a value path');
  }
}

/** RFC 7643 §2.5: null and "" are the same as an absent value. */
function isPresent(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** The sub-attribute's value; its name is matched case-insensitively (`"Primary": true` from MS's tests). */
function subValue(element: Record<string, unknown>, path: ResolvedPath): unknown {
  const name = (path.sub ?? path.attr).name;
  if (name in element) return element[name];
  const lower = name.toLowerCase();
  const key = Object.keys(element).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : element[key];
}

function compareValue(def: AttributeDef, op: CompareOp, actual: unknown, literal: FilterValue): boolean {
  if (literal === null) return op === 'ne' ? isPresent(actual) : !isPresent(actual);
  if (op === 'ne') return !compareValue(def, 'eq', actual, literal);
  return isPresent(actual) && compareKeys(op, valueKey(def, actual), literalKey(def, literal));
}

/**
 * A filter literal as the key it is compared with: Entra's "True"/"False" count as booleans,
 * dates are read with any number of fractional digits and an offset.
 */
export function literalKey(def: AttributeDef, literal: string | number | boolean): string {
  if (def.type === 'boolean') {
    const b = booleanOf(literal);
    if (b === undefined) throw filterError(`"${def.name}" is boolean: ${JSON.stringify(literal)} is not true or false`);
    return valueKey(def, b);
  }
  if (def.type === 'dateTime') return valueKey(def, new Date(dateLiteral(def, literal)).toISOString());
  return valueKey(def, literal);
}

export function dateLiteral(def: AttributeDef, literal: string | number | boolean): number {
  const ms = typeof literal === 'string' ? parseDateTime(literal) : undefined;
  if (ms === undefined)
    throw filterError(
      `"${def.name}" is a dateTime: ${JSON.stringify(literal)} is not a date such as 2015-10-10T14:38:21Z`,
    );
  return ms;
}

/** Compares prepared keys: text order for gt…le, as RFC 7644 §3.4.2.2 asks of strings. */
export function compareKeys(op: Exclude<CompareOp, 'ne'>, actual: string, literal: string): boolean {
  switch (op) {
    case 'eq':
      return actual === literal;
    case 'co':
      return actual.includes(literal);
    case 'sw':
      return actual.startsWith(literal);
    case 'ew':
      return actual.endsWith(literal);
    case 'gt':
      return actual > literal;
    case 'ge':
      return actual >= literal;
    case 'lt':
      return actual < literal;
    case 'le':
      return actual <= literal;
  }
}
