import type { Request } from 'express';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { InvalidInput, TooLarge } from '../errors.js';
import { logFailure, toRosterError } from '../http/error-common.js';
import { scimErrorBody } from '../http/scim-error.js';
import { createScimGroup, deleteScimGroup, patchScimGroup, replaceScimGroup } from '../provisioning/scim-groups.js';
import { createScimUser, deleteScimUser, patchScimUser, replaceScimUser } from '../provisioning/scim-users.js';
import { etagOf, writeCondition } from './etag.js';
import { parsePatchOps } from './patch/parse.js';
import { GROUP_RT, USER_RT } from '../directory/model/registry.js';
import { groupLocation, userLocation } from './serialize.js';

export const BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';
export const MAX_BULK_OPERATIONS = 1000;

interface BulkOp {
  index: number;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  bulkId?: string;
  /** The op's `version`, as sent: an entity tag list checked like If-Match when it runs. */
  version?: unknown;
  path: string;
  data?: unknown;
}

interface OpResult {
  method: string;
  bulkId?: string;
  location?: string;
  version?: string;
  status: string;
  response?: unknown;
}

const BULK_REF = /^bulkId:(.+)$/;

function parseOps(body: unknown): { ops: BulkOp[]; failOnErrors?: number } {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new InvalidInput('invalid_body', 'a BulkRequest must be a JSON object', { scimType: 'invalidSyntax' });
  const b = body as Record<string, unknown>;
  const list = b.Operations ?? b.operations;
  if (!Array.isArray(list))
    throw new InvalidInput('invalid_body', 'Operations must be an array', { scimType: 'invalidSyntax' });
  if (list.length > MAX_BULK_OPERATIONS) {
    throw new TooLarge(
      'too_many_operations',
      `the bulk request has ${list.length} operations; maxOperations is ${MAX_BULK_OPERATIONS}`,
      { scimType: 'tooMany' },
    );
  }
  const fail = b.failOnErrors;
  if (fail !== undefined && (typeof fail !== 'number' || !Number.isInteger(fail) || fail < 1)) {
    throw new InvalidInput('invalid_body', 'failOnErrors must be a positive integer', { scimType: 'invalidValue' });
  }
  const ops = list.map((raw, index): BulkOp => {
    const o = (raw ?? {}) as Record<string, unknown>;
    const method = String(o.method ?? '').toUpperCase();
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(method))
      throw new InvalidInput('invalid_body', `operation ${index + 1}: method must be POST, PUT, PATCH or DELETE`, {
        scimType: 'invalidSyntax',
      });
    if (typeof o.path !== 'string')
      throw new InvalidInput('invalid_body', `operation ${index + 1}: path is required`, { scimType: 'invalidSyntax' });
    if (method === 'POST' && typeof o.bulkId !== 'string')
      throw new InvalidInput('invalid_body', `operation ${index + 1}: a POST needs a bulkId`, {
        scimType: 'invalidSyntax',
      });
    return {
      index,
      method: method as BulkOp['method'],
      path: o.path,
      data: o.data,
      bulkId: typeof o.bulkId === 'string' ? o.bulkId : undefined,
      version: o.version ?? undefined,
    };
  });
  return { ops, failOnErrors: fail as number | undefined };
}

/** Every bulkId an operation refers to, in its path or anywhere in its data. */
function references(op: BulkOp): Set<string> {
  const refs = new Set<string>();
  const walk = (v: unknown) => {
    if (typeof v === 'string') {
      const m = BULK_REF.exec(v);
      if (m) refs.add(m[1]!);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(op.path.split('/').pop());
  walk(op.data);
  return refs;
}

function substitute(v: unknown, ids: Map<string, string>): unknown {
  if (typeof v === 'string') {
    const m = BULK_REF.exec(v);
    return m ? (ids.get(m[1]!) ?? v) : v;
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, ids));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, ids)]));
  return v;
}

function target(path: string): { type: 'Users' | 'Groups'; id?: string } {
  const m = /^\/?(Users|Groups)(?:\/([^/]+))?\/?$/i.exec(path);
  if (!m)
    throw new InvalidInput('invalid_path', `bulk path "${path}" must be /Users, /Groups, /Users/{id} or /Groups/{id}`, {
      scimType: 'invalidPath',
    });
  return { type: m[1]!.toLowerCase() === 'users' ? 'Users' : 'Groups', id: m[2] };
}

async function run(db: Db, ctx: Ctx, base: string, op: BulkOp, ids: Map<string, string>): Promise<OpResult> {
  const path = op.path
    .split('/')
    .map((seg) => substitute(seg, ids) as string)
    .join('/');
  const data = substitute(op.data, ids);
  const t = target(path);
  if (op.version !== undefined && typeof op.version !== 'string') {
    throw new InvalidInput('invalid_precondition', 'version must be an entity tag such as W/"3"', {
      scimType: 'invalidSyntax',
    });
  }
  const expected = op.version === undefined ? undefined : writeCondition(op.version);
  const out = { method: op.method, ...(op.bulkId ? { bulkId: op.bulkId } : {}) };
  const locate = (id: string) => (t.type === 'Users' ? userLocation(base, id) : groupLocation(base, id));
  if (op.method === 'POST') {
    if (t.id) throw new InvalidInput('invalid_path', 'POST goes to /Users or /Groups', { scimType: 'invalidPath' });
    const created = t.type === 'Users' ? await createScimUser(db, ctx, data) : await createScimGroup(db, ctx, data);
    ids.set(op.bulkId!, created.id);
    return { ...out, location: locate(created.id), version: etagOf(created.version), status: '201' };
  }
  if (!t.id)
    throw new InvalidInput('invalid_path', `${op.method} needs a resource id in its path`, { scimType: 'invalidPath' });
  if (op.method === 'DELETE') {
    await (t.type === 'Users' ? deleteScimUser(db, ctx, t.id, expected) : deleteScimGroup(db, ctx, t.id, expected));
    return { ...out, location: locate(t.id), status: '204' };
  }
  const version =
    t.type === 'Users'
      ? op.method === 'PUT'
        ? (await replaceScimUser(db, ctx, t.id, data, expected)).version
        : (await patchScimUser(db, ctx, t.id, parsePatchOps(data, USER_RT), expected)).version
      : op.method === 'PUT'
        ? (await replaceScimGroup(db, ctx, t.id, data, expected)).group.version
        : (await patchScimGroup(db, ctx, t.id, parsePatchOps(data, GROUP_RT), expected)).group.version;
  return { ...out, location: locate(t.id), version: etagOf(version), status: '200' };
}

/** Lets other requests in between two operations: SQLite runs each one on the event loop. */
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * RFC 7644 §3.7. Each operation is its own transaction. Operations run in request order, except
 * that one referring to a bulkId another operation creates waits until that one has run, so a
 * group may list users created later in the same request. References that never resolve
 * (unknown or circular) fail their operations with 409. Each operation counts against the
 * token's rate limit (`charge` throws before anything runs), and the work is linear in the
 * request: operations are indexed by bulkId once, and each waits on a counter of the
 * operations it still needs.
 */
export async function processBulk(
  db: Db,
  req: Request,
  base: string,
  charge: (operations: number) => void,
): Promise<{ schemas: string[]; Operations: OpResult[] }> {
  const { ops, failOnErrors } = parseOps(req.body);
  const creator = new Map<string, BulkOp>();
  for (const op of ops) {
    if (op.method !== 'POST' || op.bulkId === undefined) continue;
    const first = creator.get(op.bulkId);
    if (first)
      throw new InvalidInput(
        'invalid_body',
        `operations ${first.index + 1} and ${op.index + 1} both declare bulkId "${op.bulkId}"`,
        { scimType: 'invalidValue' },
      );
    creator.set(op.bulkId, op);
  }
  charge(ops.length);
  const ids = new Map<string, string>();
  const results = new Map<number, OpResult>();
  // For each creating operation not yet run, the operations waiting on it, and per waiting
  // operation how many creators it still waits for.
  const waiters = new Map<BulkOp, BulkOp[]>();
  const blocking = new Map<BulkOp, number>();
  let errors = 0;
  const stopped = () => failOnErrors !== undefined && errors >= failOnErrors;
  const fail = (op: BulkOp, err: unknown) => {
    errors++;
    logFailure(req, err, toRosterError(err));
    const { status, body } = scimErrorBody(err, req.id);
    results.set(op.index, {
      method: op.method,
      ...(op.bulkId ? { bulkId: op.bulkId } : {}),
      status: String(status),
      response: body,
    });
  };
  const refsOf = new Map(ops.map((op) => [op, [...references(op)]]));

  /** Runs an operation whose creators have all run, then those it releases, depth-first. */
  const runReady = async (first: BulkOp) => {
    const ready = [first];
    while (ready.length && !stopped()) {
      const op = ready.pop()!;
      const unresolved = refsOf.get(op)!.filter((r) => !ids.has(r));
      if (unresolved.length) {
        fail(
          op,
          new InvalidInput(
            'unresolved_bulk_id',
            `bulkId ${unresolved.map((r) => `"${r}"`).join(', ')} does not name a resource created in this request`,
            { scimType: 'invalidValue' },
          ),
        );
      } else {
        await yieldToLoop();
        try {
          results.set(op.index, await run(db, { ...req.ctx!, now: new Date() }, base, op, ids));
        } catch (err) {
          fail(op, err);
        }
      }
      const released = waiters.get(op) ?? [];
      waiters.delete(op);
      // Reversed so that released operations run in request order off the stack.
      for (const w of released.reverse()) {
        const left = blocking.get(w)! - 1;
        blocking.set(w, left);
        if (left === 0) ready.push(w);
      }
    }
  };

  for (const op of ops) {
    if (stopped()) break;
    const pending = new Set(
      refsOf
        .get(op)!
        .map((r) => creator.get(r))
        .filter((c): c is BulkOp => c !== undefined && !results.has(c.index)),
    );
    if (pending.size === 0) {
      await runReady(op);
      continue;
    }
    blocking.set(op, pending.size);
    for (const c of pending) {
      const list = waiters.get(c);
      if (list) list.push(op);
      else waiters.set(c, [op]);
    }
  }
  if (!stopped()) {
    for (const [op, left] of blocking) {
      if (left === 0) continue;
      errors++;
      results.set(op.index, {
        method: op.method,
        ...(op.bulkId ? { bulkId: op.bulkId } : {}),
        status: '409',
        response: {
          schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
          status: '409',
          detail: 'circular bulkId references cannot be resolved',
        },
      });
    }
  }
  return { schemas: [BULK_RESPONSE], Operations: [...results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r) };
}
