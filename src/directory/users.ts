import type { Knex } from 'knex';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { noRowChanged, whereVersion, type VersionCondition } from '../db/versioned.js';
import { currentRead } from '../db/dialect.js';
import { parseJson, toBool, toMs } from '../db/rows.js';
import type { ScimDoc } from './model/normalize.js';
import { caseMappedKey, userNameProblem } from './model/value-key.js';
import { userAttrRows } from './user-attrs.js';

export type UserStatus = 'invited' | 'active' | 'suspended';
export type UserSource = 'scim' | 'invite' | 'jit';

export interface User {
  tenantId: string;
  id: string;
  userName: string;
  externalId: string | null;
  displayName: string | null;
  email: string | null;
  active: boolean;
  status: UserStatus;
  role: 'admin' | 'member';
  templateId: string | null;
  crmAccess: boolean;
  source: UserSource;
  doc: ScimDoc;
  version: number;
  createdAt: number;
  updatedAt: number;
  lastLoginAt: number | null;
}

type Row = Record<string, unknown>;

export function userFromRow(r: Row): User {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    userName: String(r.user_name),
    externalId: (r.external_id as string | null) ?? null,
    displayName: (r.display_name as string | null) ?? null,
    email: (r.email as string | null) ?? null,
    active: toBool(r.active),
    status: r.status as UserStatus,
    role: r.role as User['role'],
    templateId: (r.template_id as string | null) ?? null,
    crmAccess: toBool(r.crm_access),
    source: r.source as UserSource,
    doc: parseJson<ScimDoc>(r.scim_doc, {}),
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
    lastLoginAt: toMs(r.last_login_at),
  };
}

const EMAILISH = /^[^\s@]+@[^\s@]+$/;

/** The management email: primary, else the first work one, else the first, else an address-like userName. */
export function primaryEmail(doc: ScimDoc): string | null {
  const emails = (Array.isArray(doc.emails) ? doc.emails : []) as {
    value?: string;
    type?: string;
    primary?: boolean;
  }[];
  const pick = emails.find((e) => e.primary) ?? emails.find((e) => e.type?.toLowerCase() === 'work') ?? emails[0];
  if (pick?.value) return pick.value;
  return typeof doc.userName === 'string' && EMAILISH.test(doc.userName) ? doc.userName : null;
}

function displayNameOf(doc: ScimDoc): string | null {
  if (typeof doc.displayName === 'string') return doc.displayName;
  const name = doc.name as { formatted?: string; givenName?: string; familyName?: string } | undefined;
  if (name?.formatted) return name.formatted;
  const joined = [name?.givenName, name?.familyName].filter(Boolean).join(' ');
  return joined || null;
}

/** Validates the userName of a document and returns it. */
export function checkedUserName(doc: ScimDoc): string {
  const userName = doc.userName;
  if (typeof userName !== 'string' || userName === '') {
    throw new InvalidInput('user_name_required', 'userName is required', { scimType: 'invalidValue' });
  }
  const problem = userNameProblem(userName);
  if (problem) throw new InvalidInput('invalid_user_name', problem, { scimType: 'invalidValue' });
  return userName;
}

/** Columns that mirror the document, recomputed on every write. */
function derivedColumns(doc: ScimDoc) {
  const userName = checkedUserName(doc);
  const email = primaryEmail(doc);
  const active = doc.active !== false;
  return {
    user_name: userName,
    user_name_key: caseMappedKey(userName),
    external_id: typeof doc.externalId === 'string' ? doc.externalId : null,
    display_name: displayNameOf(doc)?.slice(0, 255) ?? null,
    email: email?.slice(0, 320) ?? null,
    email_key: email ? caseMappedKey(email).slice(0, 320) : null,
    active,
    scim_doc: JSON.stringify(doc),
  };
}

function userNameTaken(userName: string, cause: unknown): Conflict {
  return new Conflict('user_name_taken', `userName "${userName}" is already taken in this tenant`, {
    scimType: 'uniqueness',
    cause,
  });
}

async function writeAttrs(trx: Knex, tenantId: string, userId: string, doc: ScimDoc): Promise<void> {
  await insertChunked(
    trx,
    'user_attrs',
    userAttrRows(doc).map((r) => ({ tenant_id: tenantId, user_id: userId, ...r })),
  );
}

export async function getUser(db: Knex, tenantId: string, id: string): Promise<User | undefined> {
  const row = await db('users').where({ tenant_id: tenantId, id }).first();
  return row ? userFromRow(row) : undefined;
}

function userNotFound(id: string): NotFound {
  return new NotFound('user_not_found', `no user with id "${id}"`);
}

export async function requireUser(db: Knex, tenantId: string, id: string): Promise<User> {
  const u = await getUser(db, tenantId, id);
  if (!u) throw userNotFound(id);
  return u;
}

export interface NewUser {
  doc: ScimDoc;
  source: UserSource;
  status?: UserStatus;
  role?: User['role'];
  templateId?: string | null;
  crmAccess?: boolean;
}

export async function insertUser(trx: Knex, tenantId: string, input: NewUser, now: number): Promise<User> {
  const cols = derivedColumns(input.doc);
  const row = {
    tenant_id: tenantId,
    id: newId(),
    ...cols,
    status: input.status ?? (cols.active ? 'active' : 'suspended'),
    role: input.role ?? 'member',
    template_id: input.templateId ?? null,
    crm_access: input.crmAccess ?? input.role === 'admin',
    source: input.source,
    version: 1,
    created_at: now,
    updated_at: now,
    last_login_at: null,
  };
  try {
    await trx('users').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw userNameTaken(cols.user_name, err);
    throw err;
  }
  await writeAttrs(trx, tenantId, row.id, input.doc);
  return userFromRow(row);
}

/**
 * Takes a user's row for a change: bumps the version (and so holds the row lock until commit)
 * and returns the user as it is now. With a `condition` (If-Match, If-None-Match), a version it
 * refuses fails with 412; without it, concurrent changes queue up rather than fail.
 */
export async function lockUser(
  trx: Knex,
  tenantId: string,
  id: string,
  now: number,
  condition?: VersionCondition,
): Promise<User> {
  const q = whereVersion(trx('users').where({ tenant_id: tenantId, id }), condition);
  const changed = await q.update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0) await noRowChanged(trx, 'users', { tenant_id: tenantId, id }, condition, userNotFound(id), 'user');
  return (await getUser(trx, tenantId, id))!;
}

/**
 * Writes a locked user's new SCIM document. Status follows a change of `active` (SCIM is
 * authoritative for identities); a write that leaves `active` as it was keeps the status, so
 * an IdP's routine profile update neither undoes an admin's suspension nor accepts an
 * invitation.
 */
export async function writeUserDoc(trx: Knex, locked: User, doc: ScimDoc): Promise<User> {
  const cols = derivedColumns(doc);
  const status: UserStatus =
    cols.active === locked.active
      ? locked.status
      : cols.active
        ? locked.status === 'invited'
          ? 'invited'
          : 'active'
        : 'suspended';
  try {
    await trx('users')
      .where({ tenant_id: locked.tenantId, id: locked.id })
      .update({ ...cols, status });
  } catch (err) {
    if (isUniqueViolation(err)) throw userNameTaken(cols.user_name, err);
    throw err;
  }
  await trx('user_attrs').where({ tenant_id: locked.tenantId, user_id: locked.id }).delete();
  await writeAttrs(trx, locked.tenantId, locked.id, doc);
  return userFromRow({ ...userToRow(locked), ...cols, status });
}

/** The inverse of userFromRow. */
export function userToRow(u: User): Row {
  return {
    tenant_id: u.tenantId,
    id: u.id,
    user_name: u.userName,
    external_id: u.externalId,
    display_name: u.displayName,
    email: u.email,
    active: u.active,
    status: u.status,
    role: u.role,
    template_id: u.templateId,
    crm_access: u.crmAccess,
    source: u.source,
    scim_doc: JSON.stringify(u.doc),
    version: u.version,
    created_at: u.createdAt,
    updated_at: u.updatedAt,
    last_login_at: u.lastLoginAt,
  };
}

/** Deletes a user and their IdP group memberships; audit events stay. */
export async function deleteUser(trx: Knex, tenantId: string, id: string, condition?: VersionCondition): Promise<void> {
  const q = whereVersion(trx('users').where({ tenant_id: tenantId, id }), condition);
  await trx('idp_group_members').where({ tenant_id: tenantId, member_id: id }).delete();
  if ((await q.delete()) === 0)
    await noRowChanged(trx, 'users', { tenant_id: tenantId, id }, condition, userNotFound(id), 'user');
}

/** The user holding an email, compared as prepared strings (case and width folded). */
export async function findUserByEmail(db: Knex, tenantId: string, email: string): Promise<User | undefined> {
  const row = await db('users')
    .where({ tenant_id: tenantId, email_key: caseMappedKey(email).slice(0, 320) })
    .first();
  return row ? userFromRow(row) : undefined;
}

/** Account fields that only the management API sets: never reachable from SCIM or SSO. */
export interface AccountFields {
  role?: User['role'];
  status?: UserStatus;
  templateId?: string | null;
  crmAccess?: boolean;
  lastLoginAt?: number;
}

export async function writeAccountFields(trx: Knex, locked: User, f: AccountFields): Promise<User> {
  const row: Row = {};
  if (f.role !== undefined) row.role = f.role;
  if (f.status !== undefined) row.status = f.status;
  if (f.templateId !== undefined) row.template_id = f.templateId;
  if (f.crmAccess !== undefined) row.crm_access = f.crmAccess;
  if (f.lastLoginAt !== undefined) row.last_login_at = f.lastLoginAt;
  if (Object.keys(row).length) await trx('users').where({ tenant_id: locked.tenantId, id: locked.id }).update(row);
  return userFromRow({ ...userToRow(locked), ...row });
}

/** Active admins other than `exceptId`: the last-admin rule counts them. */
export async function countActiveAdmins(db: Knex, tenantId: string, exceptId?: string): Promise<number> {
  const q = db('users').where({ tenant_id: tenantId, role: 'admin', status: 'active' });
  if (exceptId) q.whereNot('id', exceptId);
  const r = await currentRead(q.count({ n: '*' })).first();
  return Number(r?.n ?? 0);
}
