import { InvalidInput } from '../../errors.js';
import type { MemberRef, MemberStep } from '../../directory/groups.js';
import type { Filter } from '../filter/ast.js';
import { checkMemberCount } from '../../directory/model/limits.js';
import type { ScimDoc } from '../../directory/model/normalize.js';
import { GROUP_RT, resolvePath, splitUrn, type ResolvedPath } from '../../directory/model/registry.js';
import { applyPatchToDoc } from './apply-user.js';
import { atOperation, type PatchOp, type PatchOpName } from './parse.js';
import { invalidPath } from './path.js';

export interface GroupPatchPlan {
  /** The group's attributes after the operations. */
  doc: ScimDoc;
  /** Membership changes in request order. */
  memberSteps: MemberStep[];
}

type Json = Record<string, unknown>;

const MEMBER_TYPES = ['User', 'Group'] as const;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function invalidValue(message: string): InvalidInput {
  return new InvalidInput('invalid_value', message, { scimType: 'invalidValue' });
}

function isMembers(target: ResolvedPath): boolean {
  return target.attr.name === 'members';
}

/** A member field, its name compared case-insensitively (MS-POSTMAN sends `Value`). */
function field(obj: Json, name: string): unknown {
  const key = Object.keys(obj).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : obj[key];
}

function memberType(raw: unknown, where: string): MemberRef['type'] {
  if (raw === undefined || raw === null) return undefined;
  const type = typeof raw === 'string' ? MEMBER_TYPES.find((t) => t.toLowerCase() === raw.toLowerCase()) : undefined;
  if (!type) throw invalidValue(`${where}.type must be "User" or "Group", got ${JSON.stringify(raw)}`);
  return type;
}

/** A bare string is the member's id (MS-POSTMAN); `display` and Entra's `"$ref": null` are not kept. */
function memberRef(raw: unknown, where: string): MemberRef {
  const obj = isObject(raw) ? raw : { value: raw };
  const value = field(obj, 'value');
  if (typeof value !== 'string' || value === '') {
    throw invalidValue(
      `${where}.value must be a non-empty string (the member's id), got ${value === undefined ? 'none' : JSON.stringify(value)}`,
    );
  }
  const type = memberType(field(obj, 'type'), where);
  return type ? { value, type } : { value };
}

function memberRefs(raw: unknown): MemberRef[] {
  if (raw === undefined || raw === null) return [];
  return (Array.isArray(raw) ? raw : [raw]).map((m, i) => memberRef(m, `members[${i}]`));
}

/** Ids named by `value eq "…"`, alone or joined with `or` (Okta, Entra's compliant dialect). */
function filteredIds(filter: Filter): string[] | undefined {
  if (filter.kind === 'or') {
    const left = filteredIds(filter.left);
    const right = filteredIds(filter.right);
    return left && right ? [...left, ...right] : undefined;
  }
  const named =
    filter.kind === 'compare' && filter.op === 'eq' && (filter.path.sub ?? filter.path.attr).name === 'value';
  return named && (typeof filter.value === 'string' || typeof filter.value === 'number')
    ? [String(filter.value)]
    : undefined;
}

/**
 * Add, replace or remove of `members` itself. A remove with a `value` list is Entra's legacy
 * form and removes only those members: treating it as "remove all" by RFC 7644 §3.5.2.2 empties
 * the group (MicrosoftDocs/azure-docs#30826).
 */
function wholeMembersStep(op: PatchOpName, value: unknown): MemberStep | undefined {
  if (op === 'add') {
    const members = memberRefs(value);
    return members.length ? { kind: 'add', members } : undefined;
  }
  if (op === 'replace') {
    const members = memberRefs(value);
    return members.length ? { kind: 'replaceAll', members } : { kind: 'removeAll' };
  }
  if (value === undefined || value === null) return { kind: 'removeAll' };
  const ids = memberRefs(value).map((m) => m.value);
  return ids.length ? { kind: 'remove', ids } : undefined;
}

function pathStep(op: PatchOp & { path: NonNullable<PatchOp['path']> }): MemberStep | undefined {
  const { path } = op;
  if (path.target.sub)
    throw invalidPath(
      `path "${path.text}": a member's sub-attributes cannot be changed; remove the member and add it again`,
    );
  if (!path.filter) return wholeMembersStep(op.op, op.value);
  if (op.op !== 'remove') throw invalidPath(`path "${path.text}": ${op.op} takes the path "members" without a filter`);
  const ids = filteredIds(path.filter);
  if (!ids) {
    throw new InvalidInput(
      'invalid_filter',
      `path "${path.text}": members can only be selected by value eq "<id>", alone or joined with "or"`,
      {
        scimType: 'invalidFilter',
      },
    );
  }
  return { kind: 'remove', ids };
}

/**
 * Takes `members` out of a no-path value map, also from under the core Group URN. Keys naming
 * a member sub-attribute are dropped: a value map skips what cannot be set.
 */
function splitMembers(map: Json): { members?: unknown; rest: Json } {
  const rest: Json = {};
  let members: unknown;
  for (const [key, raw] of Object.entries(map)) {
    const schema = /^urn:/i.test(key) ? splitUrn(GROUP_RT, key) : undefined;
    if (schema?.rest === '' && isObject(raw)) {
      const inner = splitMembers(raw);
      if (inner.members !== undefined) members = inner.members;
      if (Object.keys(inner.rest).length) rest[key] = inner.rest;
      continue;
    }
    const target = resolvePath(GROUP_RT, key);
    if (!target || !isMembers(target)) rest[key] = raw;
    else if (!target.sub) members = raw;
  }
  return members === undefined ? { rest } : { members, rest };
}

function memberSize(steps: MemberStep[]): number {
  return steps.reduce(
    (n, s) => n + (s.kind === 'remove' ? s.ids.length : s.kind === 'removeAll' ? 0 : s.members.length),
    0,
  );
}

/** The membership steps of a PATCH, in request order; they do not depend on the stored group. */
function memberStepsOf(ops: PatchOp[]): MemberStep[] {
  const steps: MemberStep[] = [];
  for (const op of ops) {
    let step: MemberStep | undefined;
    if (op.path && isMembers(op.path.target)) {
      const path = op.path;
      step = atOperation(op.index, () => pathStep({ ...op, path }));
    } else if (!op.path) {
      const { members } = splitMembers(op.value as Json);
      if (members !== undefined) step = atOperation(op.index, () => wholeMembersStep(op.op, members));
    }
    if (step) steps.push(step);
  }
  return steps;
}

/**
 * Refuses, before any database work, a PATCH naming more members than one request may: the cap
 * holds for the request as a whole, since many operations of a few members each add up.
 */
export function checkGroupPatchSize(ops: PatchOp[]): void {
  checkMemberCount(memberSize(memberStepsOf(ops)));
}

/**
 * Plans a Group PATCH without loading members: membership operations become steps the storage
 * applies as row inserts and deletes (cost follows the request, not the group's size), the other
 * attributes are patched as for users. The first bad operation throws, naming its position.
 */
export function planGroupPatch(ops: PatchOp[], current: { id: string; doc: ScimDoc }): GroupPatchPlan {
  let doc = current.doc;
  for (const op of ops) {
    if (op.path && !isMembers(op.path.target)) {
      doc = applyPatchToDoc(doc, [op], GROUP_RT, current);
    } else if (!op.path) {
      const { rest } = splitMembers(op.value as Json);
      if (Object.keys(rest).length) doc = applyPatchToDoc(doc, [{ ...op, value: rest }], GROUP_RT, current);
    }
  }
  const memberSteps = memberStepsOf(ops);
  checkMemberCount(memberSize(memberSteps));
  return { doc, memberSteps };
}
