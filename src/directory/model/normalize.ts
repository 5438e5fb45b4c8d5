import { InvalidInput } from '../../errors.js';
import { checkLength, checkValueCount } from './limits.js';
import { commonAttributes, type AttributeDef } from './definitions.js';
import { findSubAttr, splitUrn, type ResourceType } from './registry.js';

/** A resource document with canonical attribute names: core at the top, extensions under their URN. */
export type ScimDoc = Record<string, unknown>;

function invalidValue(message: string): InvalidInput {
  return new InvalidInput('invalid_value', message, { scimType: 'invalidValue' });
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Checks one simple value against its attribute's type and length. Nothing is converted: a
 * number sent for a string attribute is refused, not kept as its text. The one tolerance is
 * Entra's booleans as "True"/"False" (idp-behaviour.md §2.3, §2.6). Values are otherwise kept
 * exactly as sent (a phone number is never reformatted).
 */
export function coerceSimple(def: AttributeDef, value: unknown, where: string): unknown {
  if (value === null || value === undefined) return undefined;
  switch (def.type) {
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value.trim()))
        return value.trim().toLowerCase() === 'true';
      throw invalidValue(`${where} must be a boolean, got ${kindOf(value)}`);
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      throw invalidValue(`${where} must be an integer, got ${kindOf(value)}`);
    case 'decimal':
      if (typeof value === 'number') return value;
      throw invalidValue(`${where} must be a number, got ${kindOf(value)}`);
    case 'dateTime':
      if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return checkLength(def, value, where);
      throw invalidValue(`${where} must be an xsd:dateTime`);
    case 'complex':
      throw invalidValue(`${where} must be an object`);
    default:
      if (typeof value === 'string') return checkLength(def, value, where);
      throw invalidValue(`${where} must be a string, got ${kindOf(value)}`);
  }
}

function normalizeComplex(def: AttributeDef, value: unknown, where: string): Record<string, unknown> | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (!isObject(value)) throw invalidValue(`${where} must be an object, got ${kindOf(value)}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const sub = findSubAttr(def, k);
    if (!sub) continue;
    const coerced = coerceSimple(sub, v, `${where}.${sub.name}`);
    if (coerced !== undefined && coerced !== '') out[sub.name] = coerced;
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * An element of a multi-valued complex attribute. A group member may be its bare id: Microsoft's
 * reference tests send `members` that way (idp-behaviour.md §2.6); any other attribute takes
 * objects only, so `"emails": ["a@b.c"]` is refused like `"emails": "a@b.c"`.
 */
function normalizeElement(def: AttributeDef, item: unknown, where: string): Record<string, unknown> | undefined {
  const bareMember = def.name === 'members' && typeof item === 'string';
  return normalizeComplex(def, bareMember ? { value: item } : item, where);
}

/**
 * Normalises one attribute's value: canonical sub-attribute names, checked types and lengths,
 * nulls and empty strings dropped (RFC 7643 §2.5: null is unassigned). Undefined means
 * "unassigned". A multi-valued attribute takes a list, or one object standing for a list of it;
 * a user's lists are capped (limits.ts), checked before any element is looked at.
 * `manager` given as a bare id string becomes `{value}` (Entra ID sends it that way).
 */
export function normalizeValue(def: AttributeDef, value: unknown, where: string): unknown {
  // Entra clears any attribute with "" (SCIM_Null_Update_Test), a list or a complex one too.
  if (value === null || value === undefined || value === '') return undefined;
  if (def.multiValued) {
    if (
      !Array.isArray(value) &&
      !(def.type === 'complex' && (isObject(value) || (def.name === 'members' && typeof value === 'string')))
    ) {
      throw invalidValue(`${where} must be a list${def.type === 'complex' ? ' of objects' : ''}, got ${kindOf(value)}`);
    }
    const list: unknown[] = Array.isArray(value) ? value : [value];
    checkValueCount(def, list.length, where);
    const out: unknown[] = [];
    for (const [i, item] of list.entries()) {
      const n =
        def.type === 'complex'
          ? normalizeElement(def, item, `${where}[${i}]`)
          : coerceSimple(def, item, `${where}[${i}]`);
      if (n !== undefined && n !== '') out.push(n);
    }
    return out.length ? out : undefined;
  }
  if (def.type === 'complex') {
    const obj = def.name === 'manager' && typeof value === 'string' ? { value } : value;
    return normalizeComplex(def, obj, where);
  }
  const n = coerceSimple(def, value, where);
  return n === '' ? undefined : n;
}

function findAttr(list: readonly AttributeDef[], name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return list.find((a) => a.name.toLowerCase() === lower);
}

const EXTERNAL_ID = commonAttributes.find((a) => a.name === 'externalId')!;

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
      const externalId = coerceSimple(EXTERNAL_ID, raw, 'externalId');
      if (externalId !== undefined && externalId !== '') doc.externalId = externalId;
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
