import { InvalidInput } from '../../errors.js';
import type { AttributeDef } from './definitions.js';
import { findSubAttr, splitUrn, type ResourceType } from './registry.js';

/** A resource document with canonical attribute names: core at the top, extensions under their URN. */
export type ScimDoc = Record<string, unknown>;

/**
 * Coerces one simple value to its attribute's type. Entra sends booleans as "True"/"False";
 * values are otherwise kept exactly as sent (a phone number is never reformatted).
 */
export function coerceSimple(def: AttributeDef, value: unknown, where: string): unknown {
  if (value === null || value === undefined) return undefined;
  switch (def.type) {
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
      throw new InvalidInput('invalid_value', `${where} must be a boolean, got ${JSON.stringify(value)}`, { scimType: 'invalidValue' });
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      throw new InvalidInput('invalid_value', `${where} must be an integer`, { scimType: 'invalidValue' });
    case 'decimal':
      if (typeof value === 'number') return value;
      throw new InvalidInput('invalid_value', `${where} must be a number`, { scimType: 'invalidValue' });
    case 'dateTime':
      if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return value;
      throw new InvalidInput('invalid_value', `${where} must be an xsd:dateTime`, { scimType: 'invalidValue' });
    case 'complex':
      throw new InvalidInput('invalid_value', `${where} must be an object`, { scimType: 'invalidValue' });
    default:
      if (typeof value === 'string') return value;
      // Numbers and booleans sent for string attributes are kept as their text.
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      throw new InvalidInput('invalid_value', `${where} must be a string, got ${Array.isArray(value) ? 'an array' : typeof value}`, {
        scimType: 'invalidValue',
      });
  }
}

function normalizeComplex(def: AttributeDef, value: unknown, where: string): Record<string, unknown> | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInput('invalid_value', `${where} must be an object`, { scimType: 'invalidValue' });
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const sub = findSubAttr(def, k);
    if (!sub) continue;
    const coerced = coerceSimple(sub, v, `${where}.${sub.name}`);
    if (coerced !== undefined && coerced !== '') out[sub.name] = coerced;
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * Normalises one attribute's value: canonical sub-attribute names, coerced types, nulls and
 * empty strings dropped (RFC 7643 §2.5: null is unassigned). Undefined means "unassigned".
 * `manager` given as a bare id string becomes `{value}` (Entra ID sends it that way).
 */
export function normalizeValue(def: AttributeDef, value: unknown, where: string): unknown {
  if (value === null || value === undefined) return undefined;
  if (def.multiValued) {
    const list = Array.isArray(value) ? value : [value];
    const out: unknown[] = [];
    for (const [i, item] of list.entries()) {
      if (def.type === 'complex') {
        // A bare value in a multi-valued complex attribute is its `value` sub-attribute.
        const obj = item !== null && typeof item === 'object' && !Array.isArray(item) ? item : { value: item };
        const n = normalizeComplex(def, obj, `${where}[${i}]`);
        if (n) out.push(n);
      } else {
        const n = coerceSimple(def, item, `${where}[${i}]`);
        if (n !== undefined && n !== '') out.push(n);
      }
    }
    return out.length ? out : undefined;
  }
  if (def.type === 'complex') {
    const obj = def.name === 'manager' && (typeof value === 'string' || typeof value === 'number') ? { value: String(value) } : value;
    return normalizeComplex(def, obj, where);
  }
  const n = coerceSimple(def, value, where);
  return n === '' ? undefined : n;
}

function findAttr(list: readonly AttributeDef[], name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return list.find((a) => a.name.toLowerCase() === lower);
}

export interface NormalizeResult {
  doc: ScimDoc;
  /** Canonical names of read-only attributes that were present (id, meta, groups…). */
  readOnlySeen: Record<string, unknown>;
}

/**
 * Turns a request body into a canonical document of the resource type's writable attributes.
 * Attribute names are matched case-insensitively; read-only ones are set aside for the caller
 * (Okta's PUT carries `id` and `meta`); unknown attributes and unregistered extension URNs are
 * not stored. Members of a Group are normalised like any multi-valued attribute.
 */
export function normalizeResource(rt: ResourceType, body: unknown): NormalizeResult {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidInput('invalid_body', 'the request body must be a JSON object', { scimType: 'invalidSyntax' });
  }
  const doc: ScimDoc = {};
  const readOnlySeen: Record<string, unknown> = {};
  const put = (container: string | null, def: AttributeDef, raw: unknown, where: string) => {
    if (def.mutability === 'readOnly') {
      readOnlySeen[def.name] = raw;
      return;
    }
    const v = normalizeValue(def, raw, where);
    if (v === undefined) return;
    if (container) ((doc[container] ??= {}) as Record<string, unknown>)[def.name] = v;
    else doc[def.name] = v;
  };
  for (const [key, raw] of Object.entries(body as Record<string, unknown>)) {
    const lower = key.toLowerCase();
    if (lower === 'schemas') continue;
    if (lower === 'id' || lower === 'meta') {
      readOnlySeen[lower] = raw;
      continue;
    }
    if (lower === 'externalid') {
      if (raw !== null && raw !== undefined && raw !== '') {
        if (typeof raw !== 'string') throw new InvalidInput('invalid_value', 'externalId must be a string', { scimType: 'invalidValue' });
        doc.externalId = raw;
      }
      continue;
    }
    if (lower.startsWith('urn:')) {
      const split = splitUrn(rt, key);
      if (!split) continue;
      const isCore = split.schema.id === rt.schema.id;
      if (split.rest === '') {
        // An extension's attributes grouped under its URN.
        if (raw === null || raw === undefined) continue;
        if (typeof raw !== 'object' || Array.isArray(raw)) {
          throw new InvalidInput('invalid_value', `${split.schema.id} must be an object`, { scimType: 'invalidValue' });
        }
        for (const [k2, v2] of Object.entries(raw as Record<string, unknown>)) {
          const def = findAttr(split.schema.attributes, k2);
          if (def) put(isCore ? null : split.schema.id, def, v2, `${split.schema.name}.${def.name}`);
        }
      } else {
        const def = findAttr(split.schema.attributes, split.rest);
        if (def) put(isCore ? null : split.schema.id, def, raw, `${split.schema.name}.${def.name}`);
      }
      continue;
    }
    const def = findAttr(rt.schema.attributes, key);
    if (def) put(null, def, raw, def.name);
  }
  return { doc, readOnlySeen };
}
