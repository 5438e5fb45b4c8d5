import { InvalidInput } from '../../errors.js';
import { checkValueCount } from '../../directory/model/limits.js';
import { splitUrn, type ResourceType } from '../../directory/model/registry.js';
import { parsePatchPath, resolveAttrPath, type PatchPath } from './path.js';

export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

/** Most operations one PATCH request may carry. */
export const MAX_PATCH_OPERATIONS = 1000;

export type PatchOpName = 'add' | 'replace' | 'remove';

/** One validated operation of a PatchOp message (RFC 7644 §3.5.2). */
export interface PatchOp {
  op: PatchOpName;
  /** Absent in the no-path form, where `value` is a map of attributes. */
  path?: PatchPath;
  /**
   * An extension's schema URN given alone as the path (RFC 7644 §3.10): `value` is a map of that
   * extension's attributes, and a remove takes the whole extension away.
   */
  extension?: string;
  /** The value as sent; `undefined` when the operation had no `value` member, `null` when it was null. */
  value?: unknown;
  /** 1-based position in `Operations`, as error messages name it. */
  index: number;
}

type Json = Record<string, unknown>;

const OP_NAMES: readonly PatchOpName[] = ['add', 'replace', 'remove'];

function syntax(message: string): InvalidInput {
  return new InvalidInput('invalid_patch', message, { scimType: 'invalidSyntax' });
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A member of a structural object, its name compared case-insensitively: Entra capitalises
 * structural values (ENTRA-TUT asks servers not to require case-sensitive matches on them).
 */
function member(obj: Json, name: string): { present: boolean; value: unknown } {
  const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? { present: false, value: undefined } : { present: true, value: obj[key] };
}

/**
 * Runs one operation's step, prefixing any input error with the operation's position: IdP
 * admins read these messages in Okta's and Entra's provisioning logs, next to the request.
 */
export function atOperation<T>(index: number, step: () => T): T {
  try {
    return step();
  } catch (e) {
    if (e instanceof InvalidInput) throw new InvalidInput(e.code, `operation ${index}: ${e.message}`, e.extra);
    throw e;
  }
}

function checkSchemas(body: Json): void {
  const { present, value } = member(body, 'schemas');
  // Okta and Entra always send the PatchOp URN; a client that omits it is accepted all the same.
  if (!present) return;
  if (
    !Array.isArray(value) ||
    !value.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase())
  ) {
    throw syntax(`schemas must contain "${PATCH_OP_SCHEMA}"`);
  }
}

function operationList(body: Json): unknown[] {
  const { value } = member(body, 'Operations');
  if (!Array.isArray(value) || value.length === 0) throw syntax('Operations must be a non-empty array of operations');
  if (value.length > MAX_PATCH_OPERATIONS) {
    throw new InvalidInput(
      'too_many_operations',
      `Operations holds ${value.length} operations; at most ${MAX_PATCH_OPERATIONS} are accepted per request`,
      {
        scimType: 'tooMany',
      },
    );
  }
  return value;
}

function opName(raw: unknown): PatchOpName {
  const name = typeof raw === 'string' ? OP_NAMES.find((n) => n === raw.trim().toLowerCase()) : undefined;
  if (!name)
    throw syntax(
      `${raw === undefined ? 'op is missing' : `op ${JSON.stringify(raw)} is unknown`}: expected add, replace or remove`,
    );
  return name;
}

/** The path, or undefined for the no-path form (an empty string counts as none). */
function opPath(raw: unknown, rt: ResourceType): PatchPath | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string') throw syntax('path must be a string');
  return raw.trim() === '' ? undefined : parsePatchPath(raw, rt);
}

/** The extension whose schema URN alone is the path, if it is one (a core URN alone names no attribute). */
function extensionPath(raw: unknown, rt: ResourceType): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const split = splitUrn(rt, raw.trim());
  return split && split.rest === '' && split.schema.id !== rt.schema.id ? split.schema.id : undefined;
}

function extensionOperation(
  op: PatchOpName,
  extension: string,
  value: { present: boolean; value: unknown },
  index: number,
): PatchOp {
  if (op !== 'remove' && !isObject(value.value)) {
    throw new InvalidInput('invalid_value', `${op} of ${extension} needs an object of its attributes as its value`, {
      scimType: 'invalidValue',
    });
  }
  return { op, extension, ...(value.present ? { value: value.value } : {}), index };
}

/**
 * Refuses a list longer than a user's cap while the request is parsed, before any database
 * work; what a list becomes once merged with the stored one is checked when it is applied.
 */
function checkListSizes(rt: ResourceType, path: PatchPath | undefined, value: unknown): void {
  if (path) {
    if (!path.filter && !path.target.sub && Array.isArray(value))
      checkValueCount(path.target.attr, value.length, path.text);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, v] of Object.entries(value)) {
    const schema = /^urn:/i.test(key) ? splitUrn(rt, key) : undefined;
    if (schema?.rest === '') checkListSizes(rt, undefined, v);
    else if (Array.isArray(v)) {
      const target = resolveAttrPath(rt, key);
      if (target && !target.sub) checkValueCount(target.attr, v.length, key);
    }
  }
}

function parseOperation(raw: unknown, index: number, rt: ResourceType): PatchOp {
  if (!isObject(raw)) throw syntax('must be an object with op, path and value');
  const op = opName(member(raw, 'op').value);
  const rawPath = member(raw, 'path').value;
  const value = member(raw, 'value');
  const extension = extensionPath(rawPath, rt);
  if (extension) {
    checkListSizes(rt, undefined, value.value);
    return extensionOperation(op, extension, value, index);
  }
  const path = opPath(rawPath, rt);
  checkListSizes(rt, path, value.value);
  if (op === 'remove' && !path) {
    throw new InvalidInput('no_target', 'remove needs a path naming what to remove', { scimType: 'noTarget' });
  }
  if (op !== 'remove' && !value.present)
    throw new InvalidInput('invalid_value', `${op} needs a value`, { scimType: 'invalidValue' });
  if (op !== 'remove' && !path && !isObject(value.value)) {
    throw new InvalidInput('invalid_value', `${op} without a path needs an object of attributes as its value`, {
      scimType: 'invalidValue',
    });
  }
  return { op, ...(path ? { path } : {}), ...(value.present ? { value: value.value } : {}), index };
}

/**
 * Validates a PatchOp message and parses each operation's path against the resource type.
 * `op` and member names are case-insensitive (Entra sends `Replace`, `Add`, `Remove`); every
 * error names the 1-based position of the operation at fault.
 */
export function parsePatchOps(body: unknown, rt: ResourceType): PatchOp[] {
  if (!isObject(body)) throw syntax('the PATCH body must be a JSON object');
  checkSchemas(body);
  return operationList(body).map((raw, i) => atOperation(i + 1, () => parseOperation(raw, i + 1, rt)));
}
