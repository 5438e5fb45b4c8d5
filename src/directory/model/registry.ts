import {
  commonAttributes,
  enterpriseUserSchema,
  groupSchema,
  userSchema,
  type AttributeDef,
  type SchemaDef,
} from './definitions.js';

export interface ResourceType {
  name: 'User' | 'Group';
  endpoint: '/Users' | '/Groups';
  schema: SchemaDef;
  extensions: SchemaDef[];
}

export const USER_RT: ResourceType = {
  name: 'User',
  endpoint: '/Users',
  schema: userSchema,
  extensions: [enterpriseUserSchema],
};
export const GROUP_RT: ResourceType = { name: 'Group', endpoint: '/Groups', schema: groupSchema, extensions: [] };
export const RESOURCE_TYPES: ResourceType[] = [USER_RT, GROUP_RT];

/**
 * An attribute reference resolved against a resource type: which schema it belongs to, the
 * attribute, and the sub-attribute if one was named. `schema` is null for the common attributes
 * (id, externalId, meta). Names are canonical (as the schema spells them).
 */
export interface ResolvedPath {
  schema: string | null;
  attr: AttributeDef;
  sub?: AttributeDef;
}

/** Where an attribute lives in a stored document: core ones at the top, extension ones under their URN. */
export function containerKey(p: Pick<ResolvedPath, 'schema'>, rt: ResourceType): string | null {
  return p.schema !== null && p.schema !== rt.schema.id ? p.schema : null;
}

/** A stable, readable name for a resolved path: `name.familyName`, `urn:…:User:department`. */
export function canonicalPath(p: ResolvedPath, rt: ResourceType): string {
  const key = containerKey(p, rt);
  const base = key ? `${key}:${p.attr.name}` : p.attr.name;
  return p.sub ? `${base}.${p.sub.name}` : base;
}

function findAttr(list: readonly AttributeDef[], name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return list.find((a) => a.name.toLowerCase() === lower);
}

export function findSubAttr(attr: AttributeDef, name: string): AttributeDef | undefined {
  return attr.subAttributes ? findAttr(attr.subAttributes, name) : undefined;
}

/** The schemas of a resource type, core first. */
export function schemasOf(rt: ResourceType): SchemaDef[] {
  return [rt.schema, ...rt.extensions];
}

/** Finds the schema a URN-qualified name starts with, case-insensitively. */
export function splitUrn(rt: ResourceType, path: string): { schema: SchemaDef; rest: string } | undefined {
  const lower = path.toLowerCase();
  for (const s of schemasOf(rt)) {
    const id = s.id.toLowerCase();
    if (lower === id) return { schema: s, rest: '' };
    if (lower.startsWith(`${id}:`)) return { schema: s, rest: path.slice(id.length + 1) };
  }
  return undefined;
}

/**
 * Resolves `attr`, `attr.sub`, `urn:…:attr` or `urn:…:attr.sub` (RFC 7644 §3.10), with names
 * compared case-insensitively (RFC 7643 §2.1). Undefined when the path names nothing.
 */
export function resolvePath(rt: ResourceType, path: string): ResolvedPath | undefined {
  let schema: SchemaDef | null = null;
  let rest = path;
  if (/^urn:/i.test(path)) {
    const split = splitUrn(rt, path);
    if (!split || split.rest === '') return undefined;
    schema = split.schema;
    rest = split.rest;
  }
  const dot = rest.indexOf('.');
  const head = dot < 0 ? rest : rest.slice(0, dot);
  const tail = dot < 0 ? undefined : rest.slice(dot + 1);
  let attr: AttributeDef | undefined;
  let owner: string | null = null;
  if (schema) {
    attr = findAttr(schema.attributes, head);
    owner = schema.id;
    if (!attr && schema === rt.schema) {
      attr = findAttr(commonAttributes, head);
      owner = null;
    }
  } else {
    attr = findAttr(commonAttributes, head);
    if (!attr) {
      attr = findAttr(rt.schema.attributes, head);
      owner = rt.schema.id;
    }
  }
  if (!attr) return undefined;
  if (tail === undefined) return { schema: owner, attr };
  if (tail.includes('.')) return undefined;
  const sub = findSubAttr(attr, tail);
  return sub ? { schema: owner, attr, sub } : undefined;
}
