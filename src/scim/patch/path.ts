import { InvalidInput } from '../../errors.js';
import type { Filter } from '../filter/ast.js';
import { parseFilter } from '../filter/parser.js';
import type { SchemaDef } from '../../directory/model/definitions.js';
import {
  canonicalPath,
  findSubAttr,
  resolvePath,
  type ResolvedPath,
  type ResourceType,
} from '../../directory/model/registry.js';

/** A parsed PATCH `path` (RFC 7644 §3.5.2: `attrPath`, or `valuePath [subAttr]`). */
export interface PatchPath {
  /** The path as sent, quoted back in error messages. */
  text: string;
  /** The attribute, and the sub-attribute of `name.givenName` or `emails[type eq "work"].value`. */
  target: ResolvedPath;
  /**
   * The `[…]` selection, evaluated on each element of a multi-valued attribute, or on the single
   * value of a complex one (`manager[value eq "…"]`). Its paths are sub-attributes.
   */
  filter?: Filter;
}

export function invalidPath(message: string): InvalidInput {
  return new InvalidInput('invalid_path', message, { scimType: 'invalidPath' });
}

/**
 * Resolves an attribute reference. Beyond `resolvePath`, an unqualified name that only an
 * extension defines is found there: Entra removes the manager as `manager[value eq "…"]`
 * (thomaspoignant/scim-patch#453) although `manager` belongs to the enterprise extension.
 */
export function resolveAttrPath(rt: ResourceType, text: string): ResolvedPath | undefined {
  const direct = resolvePath(rt, text);
  if (direct || /^urn:/i.test(text)) return direct;
  for (const ext of rt.extensions) {
    const found = resolvePath(rt, `${ext.id}:${text}`);
    if (found) return found;
  }
  return undefined;
}

/** Index of the `]` closing the `[` at `open`, skipping brackets inside JSON string literals. */
function closingBracket(text: string, open: number): number {
  let inString = false;
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === ']') return i;
  }
  return -1;
}

/**
 * The resource type with one singular complex attribute presented as multi-valued: the filter
 * parser takes `[…]` only after multi-valued attributes, and Entra also selects the single
 * `manager` that way.
 */
function multiValuedView(rt: ResourceType, target: ResolvedPath): ResourceType {
  const widen = (s: SchemaDef): SchemaDef => ({
    ...s,
    attributes: s.attributes.map((a) => (a === target.attr ? { ...a, multiValued: true } : a)),
  });
  return { ...rt, schema: widen(rt.schema), extensions: rt.extensions.map(widen) };
}

/**
 * Parses the `[…]` content with the filter parser by handing it `attr[inner]`, so its paths
 * resolve as sub-attributes of `attr` exactly as in a GET filter. `head` is used as sent when it
 * resolves on its own, so the parser's positions match what the client wrote.
 */
function parseValueFilter(rt: ResourceType, head: string, attr: ResolvedPath, inner: string): Filter {
  const name = resolvePath(rt, head) ? head : canonicalPath(attr, rt);
  const parsed = parseFilter(`${name}[${inner}]`, attr.attr.multiValued ? rt : multiValuedView(rt, attr));
  if (parsed.kind !== 'valuePath') {
    throw new InvalidInput('invalid_filter', `the filter in [${inner}] must select elements of ${attr.attr.name}`, {
      scimType: 'invalidFilter',
    });
  }
  return parsed.filter;
}

function parseFilteredPath(rt: ResourceType, text: string, open: number): PatchPath {
  const close = closingBracket(text, open);
  if (close < 0) throw invalidPath(`path "${text}" has an unclosed "["`);
  const head = text.slice(0, open).trim();
  const inner = text.slice(open + 1, close);
  const tail = text.slice(close + 1);
  const attr = resolveAttrPath(rt, head);
  if (!attr || attr.sub) throw invalidPath(`path "${text}": "${head}" is not an attribute of ${rt.name}`);
  if (attr.attr.type !== 'complex')
    throw invalidPath(`path "${text}": ${attr.attr.name} has no sub-attributes to filter on`);
  const filter = parseValueFilter(rt, head, attr, inner);
  if (tail === '') return { text, target: attr, filter };
  const subName = /^\.([^.[\]\s]+)$/.exec(tail)?.[1];
  const sub = subName === undefined ? undefined : findSubAttr(attr.attr, subName);
  if (!sub) throw invalidPath(`path "${text}": "${tail}" is not a sub-attribute of ${attr.attr.name}`);
  return { text, target: { ...attr, sub }, filter };
}

/** RFC 7643 §2.2: readOnly attributes cannot be modified by a client, even to their own value. */
function assertWritable(p: PatchPath, rt: ResourceType): void {
  const readOnly =
    p.target.attr.mutability === 'readOnly'
      ? p.target.attr
      : p.target.sub?.mutability === 'readOnly'
        ? p.target.sub
        : undefined;
  if (readOnly) {
    throw new InvalidInput('mutability', `path "${p.text}": ${canonicalPath(p.target, rt)} is read-only`, {
      scimType: 'mutability',
    });
  }
}

/**
 * Parses a PATCH path against a resource type: `attr`, `attr.sub`, `attr[filter]`,
 * `attr[filter].sub`, each optionally URN-qualified, names compared case-insensitively.
 * Unknown attributes are `invalidPath`; read-only ones (`id`, `meta`, `groups`) `mutability`.
 */
export function parsePatchPath(text: string, rt: ResourceType): PatchPath {
  const trimmed = text.trim();
  const open = trimmed.indexOf('[');
  let path: PatchPath;
  if (open >= 0) path = parseFilteredPath(rt, trimmed, open);
  else {
    const target = resolveAttrPath(rt, trimmed);
    if (!target) throw invalidPath(`path "${trimmed}" names no attribute of ${rt.name}`);
    path = { text: trimmed, target };
  }
  assertWritable(path, rt);
  return path;
}
