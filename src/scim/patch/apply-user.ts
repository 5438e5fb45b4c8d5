import { InvalidInput } from '../../errors.js';
import type { Filter } from '../filter/ast.js';
import { matchesElement } from '../filter/match.js';
import type { AttributeDef } from '../../directory/model/definitions.js';
import { coerceSimple, normalizeValue, type ScimDoc } from '../../directory/model/normalize.js';
import { checkValueCount } from '../../directory/model/limits.js';
import {
  containerKey,
  findSubAttr,
  splitUrn,
  type ResolvedPath,
  type ResourceType,
} from '../../directory/model/registry.js';
import { valueKey } from '../../directory/model/value-key.js';
import { atOperation, type PatchOp, type PatchOpName } from './parse.js';
import { resolveAttrPath } from './path.js';

type Json = Record<string, unknown>;

/** One attribute-level change: an operation with a path, or one key of a no-path value map. */
interface Change {
  op: PatchOpName;
  target: ResolvedPath;
  filter?: Filter;
  /** As sent; null and "" mean unassigned (RFC 7643 §2.5). */
  value: unknown;
  /** The path or key as the client wrote it, for error messages. */
  where: string;
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isUnassigned(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

function nonEmpty(obj: Json): Json | undefined {
  return Object.keys(obj).length ? obj : undefined;
}

function noTarget(message: string): InvalidInput {
  return new InvalidInput('no_target', message, { scimType: 'noTarget' });
}

function readAttr(doc: ScimDoc, rt: ResourceType, target: ResolvedPath): unknown {
  const key = containerKey(target, rt);
  const holder = key ? doc[key] : doc;
  return isObject(holder) ? holder[target.attr.name] : undefined;
}

/** Sets or (for undefined) unsets an attribute; an extension left empty disappears with it. */
function writeAttr(doc: ScimDoc, rt: ResourceType, target: ResolvedPath, value: unknown): void {
  const key = containerKey(target, rt);
  const holder = key ? (isObject(doc[key]) ? doc[key] : {}) : doc;
  if (value === undefined) delete holder[target.attr.name];
  else holder[target.attr.name] = value;
  if (!key) return;
  if (Object.keys(holder).length) doc[key] = holder;
  else delete doc[key];
}

/** Entra's older docs send the singular `manager` as a one-element list (ENTRA-TUT Example 5). */
function unwrapSingle(raw: unknown): unknown {
  return Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
}

/** One element of a multi-valued complex attribute, normalised like a singular complex value. */
function normalizeElement(def: AttributeDef, raw: unknown, where: string): Json | undefined {
  return normalizeValue({ ...def, multiValued: false }, unwrapSingle(raw), where) as Json | undefined;
}

function normalizeList(def: AttributeDef, raw: unknown, where: string): unknown[] {
  return (normalizeValue({ ...def, multiValued: true }, raw, where) as unknown[] | undefined) ?? [];
}

function normalizeSub(sub: AttributeDef, raw: unknown, where: string): unknown {
  const v = coerceSimple(sub, raw, where);
  return v === '' ? undefined : v;
}

/** Sub-attributes the client sent as null or "": RFC 7643 §2.5 makes them unassigned. */
function clearedSubs(def: AttributeDef, raw: unknown): string[] {
  if (!isObject(raw)) return [];
  return Object.entries(raw).flatMap(([k, v]) => {
    const sub = isUnassigned(v) ? findSubAttr(def, k) : undefined;
    return sub ? [sub.name] : [];
  });
}

/**
 * RFC 7644 §3.5.2.3: the sub-attributes given replace, the others are kept. A value that now
 * names another resource (`manager` with a new `value`) drops the `$ref` and display name that
 * described the previous one instead of keeping them.
 */
function mergeComplex(def: AttributeDef, existing: unknown, raw: unknown, where: string): Json | undefined {
  if (isUnassigned(raw)) return undefined;
  const incoming = normalizeElement(def, raw, where) ?? {};
  const old = isObject(existing) ? existing : {};
  const referentChanged =
    findSubAttr(def, '$ref') !== undefined && incoming.value !== undefined && incoming.value !== old.value;
  const out: Json = { ...(referentChanged ? {} : old), ...incoming };
  for (const name of clearedSubs(def, unwrapSingle(raw))) delete out[name];
  return nonEmpty(out);
}

/**
 * A complex value or element with one sub-attribute set or (for undefined) unset. Unsetting its
 * `value` drops it whole: an email, phone number or manager without its value means nothing, and
 * Entra clears a work phone by setting `phoneNumbers[type eq "work"].value` to "".
 */
function withSub(existing: unknown, sub: AttributeDef, value: unknown): Json | undefined {
  if (sub.name === 'value' && value === undefined) return undefined;
  const out: Json = { ...(isObject(existing) ? existing : {}) };
  if (value === undefined) delete out[sub.name];
  else out[sub.name] = value;
  return nonEmpty(out);
}

/**
 * A text equal for two elements exactly when they hold the same sub-attributes with the same
 * values, in any order: lists are compared through a Set of these, once per element, so a
 * PATCH costs in proportion to its values, never their square.
 */
function elementKey(el: unknown): string {
  if (!isObject(el)) return JSON.stringify([el]);
  return JSON.stringify(
    Object.keys(el)
      .sort()
      .map((k) => [k, el[k]]),
  );
}

/**
 * Which elements a list of listed items names: by `value` when an item has one (members,
 * manager), else by equality of the whole element.
 */
function listedMatcher(def: AttributeDef, listed: unknown[]): (element: unknown) => boolean {
  const valueDef = findSubAttr(def, 'value');
  const byValue = new Set<string>();
  const whole = new Set<string>();
  for (const l of listed) {
    if (valueDef && isObject(l) && l.value !== undefined) byValue.add(valueKey(valueDef, l.value));
    else whole.add(elementKey(l));
  }
  return (element) =>
    (valueDef !== undefined &&
      isObject(element) &&
      element.value !== undefined &&
      byValue.has(valueKey(valueDef, element.value))) ||
    (whole.size > 0 && whole.has(elementKey(element)));
}

/**
 * RFC 7643 §2.4: "primary" is true on one element at most. The element this operation made
 * primary (the last one, if several) wins; the others lose the flag.
 */
function keepOnePrimary(before: unknown[], after: unknown[]): unknown[] {
  const kept = new Set(before);
  const winner = after.filter((el) => isObject(el) && el.primary === true && !kept.has(el)).at(-1);
  if (!winner) return after;
  return after.map((el) => (el !== winner && isObject(el) && el.primary === true ? { ...el, primary: false } : el));
}

/**
 * The element a filter describes, when it is a conjunction of `eq` comparisons: Entra replaces
 * `emails[type eq "work"].value` and `addresses[type eq "work"].locality` on users who have no
 * such element yet and expects it to be created. A missing filter (`emails.value`) describes
 * any element.
 */
function describedElement(filter: Filter | undefined): Json | undefined {
  if (!filter) return {};
  if (filter.kind === 'compare') {
    return filter.op === 'eq' && filter.value !== null
      ? { [(filter.path.sub ?? filter.path.attr).name]: filter.value }
      : undefined;
  }
  if (filter.kind !== 'and') return undefined;
  const left = describedElement(filter.left);
  const right = describedElement(filter.right);
  return left && right ? { ...left, ...right } : undefined;
}

/** How add/replace changes one matching element; undefined drops the element. */
function elementUpdate(c: Change): (el: Json) => Json | undefined {
  const sub = c.target.sub;
  if (sub) {
    const v = isUnassigned(c.value) ? undefined : normalizeSub(sub, c.value, c.where);
    return (el) => withSub(el, sub, v);
  }
  if (isUnassigned(c.value)) return () => undefined;
  const incoming = normalizeElement(c.target.attr, c.value, c.where) ?? {};
  const cleared = clearedSubs(c.target.attr, unwrapSingle(c.value));
  return (el) => {
    const out: Json = { ...el, ...incoming };
    for (const name of cleared) delete out[name];
    return nonEmpty(out);
  };
}

function createdElement(c: Change): Json[] {
  if (isUnassigned(c.value)) return [];
  const described = describedElement(c.filter);
  if (!described) {
    throw noTarget(
      `${c.where} matches no element of ${c.target.attr.name}, and only a filter of "eq" comparisons joined by "and" says what element to create`,
    );
  }
  const sent = c.target.sub ? { [c.target.sub.name]: c.value } : unwrapSingle(c.value);
  if (!isObject(sent))
    throw new InvalidInput('invalid_value', `${c.where} must be an object`, { scimType: 'invalidValue' });
  const el = normalizeElement(c.target.attr, { ...described, ...sent }, c.where);
  return el ? [el] : [];
}

/**
 * Applies a change to the elements a filter (or a sub-attribute path without one) selects.
 * `create` says whether an add/replace matching nothing may create the element it describes;
 * a remove matching nothing changes nothing.
 */
function patchElements(list: Json[], c: Change, create: boolean): Json[] {
  const selected = (el: Json) => !c.filter || matchesElement(c.filter, el);
  const sub = c.target.sub;
  if (c.op === 'remove') {
    if (!sub) return list.filter((el) => !selected(el));
    return list.flatMap<Json>((el) => (selected(el) ? (withSub(el, sub, undefined) ?? []) : [el]));
  }
  if (!list.some(selected)) {
    if (create) return [...list, ...createdElement(c)];
    if (isUnassigned(c.value)) return list;
    throw noTarget(`${c.where} matches no value of ${c.target.attr.name}`);
  }
  const update = elementUpdate(c);
  return list.flatMap<Json>((el) => (selected(el) ? (update(el) ?? []) : [el]));
}

/** RFC 7644 §3.5.2.1: an added value already there is not added twice. */
function appendNew(list: unknown[], incoming: unknown[]): unknown[] {
  const out = [...list];
  const seen = new Set(list.map(elementKey));
  for (const el of incoming) {
    const key = elementKey(el);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(el);
    }
  }
  return out;
}

/** RFC 7644 §3.5.2.2 removes every value; Entra's legacy form lists the ones to remove. */
function remainingAfterRemove(def: AttributeDef, list: unknown[], c: Change): unknown[] {
  if (isUnassigned(c.value)) return [];
  const listed = listedMatcher(def, normalizeList(def, c.value, c.where));
  return list.filter((el) => !listed(el));
}

function nextList(current: unknown, c: Change): unknown[] | undefined {
  const def = c.target.attr;
  const list = Array.isArray(current) ? current : [];
  let next: unknown[];
  if (c.filter || c.target.sub) next = patchElements(list.filter(isObject), c, true);
  else if (c.op === 'add') next = appendNew(list, normalizeList(def, c.value, c.where));
  else if (c.op === 'replace') next = normalizeList(def, c.value, c.where);
  else next = remainingAfterRemove(def, list, c);
  if (c.op !== 'remove') next = keepOnePrimary(list, next);
  // An add or a created element can grow a list past the cap the request alone respected; a
  // list stored before the cap existed may still shrink or change in place.
  if (next.length > list.length) checkValueCount(def, next.length, c.target.attr.name);
  return next.length ? next : undefined;
}

function nextComplex(current: unknown, c: Change): unknown {
  const def = c.target.attr;
  const sub = c.target.sub;
  // `manager[value eq "…"]` selects the single value the way a filter selects elements.
  if (c.filter) return patchElements(isObject(current) ? [current] : [], c, false)[0];
  if (sub)
    return withSub(
      current,
      sub,
      c.op === 'remove' || isUnassigned(c.value) ? undefined : normalizeSub(sub, c.value, c.where),
    );
  if (c.op !== 'remove') return mergeComplex(def, current, c.value, c.where);
  if (isUnassigned(c.value)) return undefined;
  return listedMatcher(def, normalizeList(def, c.value, c.where))(current) ? undefined : current;
}

function nextValue(current: unknown, c: Change): unknown {
  const def = c.target.attr;
  if (def.multiValued) return nextList(current, c);
  if (def.type === 'complex') return nextComplex(current, c);
  return c.op === 'remove' ? undefined : normalizeValue(def, c.value, c.where);
}

function applyChange(doc: ScimDoc, rt: ResourceType, c: Change): void {
  writeAttr(doc, rt, c.target, nextValue(readAttr(doc, rt, c.target), c));
}

function checkSameId(raw: unknown, current: { id: string }): void {
  if (raw === null || raw === undefined || raw === current.id) return;
  throw new InvalidInput(
    'mutability',
    `id is read-only: this resource is "${current.id}", the value says ${JSON.stringify(raw)}`,
    {
      scimType: 'mutability',
    },
  );
}

function isReadOnly(target: ResolvedPath): boolean {
  return target.attr.mutability === 'readOnly' || target.sub?.mutability === 'readOnly';
}

/**
 * Applies `{"op":"replace","value":{…}}`: keys may be plain, dotted (`name.givenName`),
 * URN-qualified (`urn:…:User:employeeNumber`) or a schema URN holding an object. Okta's group
 * rename repeats the resource's own `id`, which is accepted. Unknown attributes, unregistered
 * extension URNs (Entra's ADSCIM group schema) and read-only attributes are skipped, as a PUT
 * skips them (MS-POSTMAN expects a misspelt attribute to pass), so a map is never refused for
 * what Roster does not keep; an explicit path to them is refused instead.
 */
function applyValueMap(doc: ScimDoc, rt: ResourceType, op: PatchOpName, map: Json, current: { id: string }): void {
  for (const [key, raw] of Object.entries(map)) {
    const lower = key.toLowerCase();
    if (lower === 'schemas' || lower === 'meta') continue;
    if (lower === 'id') {
      checkSameId(raw, current);
      continue;
    }
    const schema = /^urn:/i.test(key) ? splitUrn(rt, key) : undefined;
    if (schema?.rest === '') {
      applySchemaMap(doc, rt, op, schema.schema.id, raw, current);
      continue;
    }
    const target = resolveAttrPath(rt, key);
    if (target && !isReadOnly(target)) applyChange(doc, rt, { op, target, value: raw, where: key });
  }
}

function applySchemaMap(
  doc: ScimDoc,
  rt: ResourceType,
  op: PatchOpName,
  schemaId: string,
  raw: unknown,
  current: { id: string },
): void {
  if (raw === null) return;
  if (!isObject(raw))
    throw new InvalidInput('invalid_value', `${schemaId} must be an object of its attributes`, {
      scimType: 'invalidValue',
    });
  const qualified = Object.fromEntries(Object.entries(raw).map(([k, v]) => [`${schemaId}:${k}`, v]));
  applyValueMap(doc, rt, op, qualified, current);
}

function requiredNames(doc: ScimDoc, rt: ResourceType): string[] {
  return rt.schema.attributes.filter((a) => a.required && doc[a.name] !== undefined).map((a) => a.name);
}

function applyOperation(doc: ScimDoc, rt: ResourceType, op: PatchOp, current: { id: string }): void {
  const required = requiredNames(doc, rt);
  if (op.extension) {
    // The extension's container is keyed by its URN, which is what a remove takes away.
    if (op.op === 'remove') delete doc[op.extension];
    else applySchemaMap(doc, rt, op.op, op.extension, op.value, current);
  } else if (op.path)
    applyChange(doc, rt, {
      op: op.op,
      target: op.path.target,
      filter: op.path.filter,
      value: op.value,
      where: op.path.text,
    });
  else applyValueMap(doc, rt, op.op, op.value as Json, current);
  const lost = required.find((name) => doc[name] === undefined);
  if (lost)
    throw new InvalidInput('invalid_value', `${lost} is required and cannot be removed`, { scimType: 'invalidValue' });
}

/**
 * Applies PATCH operations (RFC 7644 §3.5.2) to a canonical document and returns the new one;
 * the input is never modified. The first bad operation throws, naming its position, so the
 * caller stores nothing of a request that fails. Values are normalised as on create (Entra's
 * "False", a bare manager id). `password` is set like any attribute and stays in the returned
 * document: the caller hashes it and strips it before storing. A changed `userName` is the
 * caller's to check for uniqueness.
 */
export function applyPatchToDoc(doc: ScimDoc, ops: PatchOp[], rt: ResourceType, current: { id: string }): ScimDoc {
  const out = structuredClone(doc);
  for (const op of ops) atOperation(op.index, () => applyOperation(out, rt, op, current));
  return out;
}
