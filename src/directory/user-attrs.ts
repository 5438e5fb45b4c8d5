import type { AttributeDef } from './model/definitions.js';
import type { ScimDoc } from './model/normalize.js';
import { USER_RT, schemasOf } from './model/registry.js';
import { valueKey } from './model/value-key.js';

export interface AttrRow {
  attr: string;
  sub: string;
  ord: number;
  value_key: string;
}

/** Attributes with their own columns on `users`, or never kept. */
const NOT_INDEXED = new Set(['userName', 'externalId', 'active', 'password']);

function simpleRows(attr: string, def: AttributeDef, value: unknown, ord: number, out: AttrRow[]): void {
  if (value === undefined || value === null || value === '') return;
  if (def.type === 'complex') {
    if (typeof value !== 'object') return;
    for (const sub of def.subAttributes ?? []) {
      const v = (value as Record<string, unknown>)[sub.name];
      if (v !== undefined && v !== null && v !== '')
        out.push({ attr, sub: sub.name, ord, value_key: valueKey(sub, v) });
    }
  } else {
    out.push({ attr, sub: '', ord, value_key: valueKey(def, value) });
  }
}

/**
 * The filter index of one user: a row per simple value. Extension attributes are named
 * `<schema urn>:<attribute>`; `ord` numbers the elements of multi-valued attributes.
 */
export function userAttrRows(doc: ScimDoc): AttrRow[] {
  const out: AttrRow[] = [];
  for (const schema of schemasOf(USER_RT)) {
    const isCore = schema.id === USER_RT.schema.id;
    const container = isCore ? doc : (doc[schema.id] as Record<string, unknown> | undefined);
    if (!container) continue;
    for (const def of schema.attributes) {
      if (isCore && NOT_INDEXED.has(def.name)) continue;
      const value = container[def.name];
      if (value === undefined) continue;
      const attr = isCore ? def.name : `${schema.id}:${def.name}`;
      if (def.multiValued && Array.isArray(value)) value.forEach((v, i) => simpleRows(attr, def, v, i, out));
      else simpleRows(attr, def, value, 0, out);
    }
  }
  return out;
}
