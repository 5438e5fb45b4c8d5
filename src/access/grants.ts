import type { Knex } from 'knex';
import { inChunks } from '../db/batch.js';
import { IANAZone } from 'luxon';
import { isValidDate, type GrantWindow } from './grant-window.js';
import { newId } from '../db/ids.js';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { toMs } from '../db/rows.js';
import { InvalidInput, NotFound, type FieldError } from '../errors.js';
import { liveDerivedSql } from '../mapping/live.js';

/**
 * Grants of an agent to a group or a user (seed 004), optionally dated. Rows a mapping rule
 * derived carry the rule and IdP group; rows made by hand carry empty provenance and are the
 * only ones this API changes.
 */

export type Permission = 'view_use' | 'edit';
export type SubjectType = 'group' | 'user';

export interface Grant extends GrantWindow {
  tenantId: string;
  id: string;
  agentId: string;
  subjectType: SubjectType;
  subjectId: string;
  permission: Permission;
  /** '' for a grant made by hand. */
  ruleId: string;
  idpGroupId: string;
  createdAt: number;
}

type Row = Record<string, unknown>;

function grantFromRow(r: Row): Grant {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    agentId: String(r.agent_id),
    subjectType: r.subject_type as SubjectType,
    subjectId: String(r.subject_id),
    permission: r.permission as Permission,
    startDate: (r.start_date as string | null) ?? null,
    endDate: (r.end_date as string | null) ?? null,
    timeZone: String(r.time_zone),
    ruleId: String(r.rule_id),
    idpGroupId: String(r.idp_group_id),
    createdAt: toMs(r.created_at)!,
  };
}

export function isManual(g: Grant): boolean {
  return g.ruleId === '' && g.idpGroupId === '';
}

/**
 * The canonical IANA name of a zone (`europe/london` → `Europe/London`), or undefined when it is
 * not one. Fixed offsets such as `UTC+2` are refused: they do not follow a place's DST rules.
 */
export function resolveTimeZone(zone: string): string | undefined {
  if (!IANAZone.isValidZone(zone)) return undefined;
  return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
}

/** Validates a window, every problem listed at once; answers it with the zone resolved. */
export function checkWindow(w: GrantWindow, root = 'body'): GrantWindow {
  const fields: FieldError[] = [];
  if (w.startDate !== null && !isValidDate(w.startDate))
    fields.push({ path: `${root}.startDate`, message: 'is not a calendar date (YYYY-MM-DD)' });
  if (w.endDate !== null && !isValidDate(w.endDate))
    fields.push({ path: `${root}.endDate`, message: 'is not a calendar date (YYYY-MM-DD)' });
  const timeZone = resolveTimeZone(w.timeZone);
  if (!timeZone) fields.push({ path: `${root}.timeZone`, message: `"${w.timeZone}" is not an IANA time zone` });
  if (!fields.length && w.startDate !== null && w.endDate !== null && w.endDate < w.startDate) {
    fields.push({ path: `${root}.endDate`, message: `must not be before startDate (${w.startDate})` });
  }
  if (fields.length) throw new InvalidInput('invalid_window', 'the grant window is invalid', { fields });
  return { startDate: w.startDate, endDate: w.endDate, timeZone: timeZone! };
}

function notFound(id: string): NotFound {
  return new NotFound('grant_not_found', `no grant with id "${id}" on this agent`);
}

export async function requireGrant(db: Knex, tenantId: string, agentId: string, id: string): Promise<Grant> {
  const row = await db('agent_grants').where({ tenant_id: tenantId, agent_id: agentId, id }).first();
  if (!row) throw notFound(id);
  return grantFromRow(row);
}

export interface GrantListQuery {
  source?: 'manual' | 'rule';
  groupId?: string;
  userId?: string;
  limit: number;
  cursor?: string;
}

const BY_ID: KeyColumn[] = [{ sql: 'id', dir: 'asc' }];

/** One page of an agent's grants, manual and derived, oldest first. */
export async function listAgentGrants(
  db: Knex,
  tenantId: string,
  agentId: string,
  q: GrantListQuery,
): Promise<{ grants: Grant[]; nextCursor: string | null }> {
  const query = db('agent_grants')
    .where({ tenant_id: tenantId, agent_id: agentId })
    .whereRaw(liveDerivedSql('agent_grants'));
  if (q.source === 'manual') query.andWhere({ rule_id: '', idp_group_id: '' });
  if (q.source === 'rule') query.andWhereNot('rule_id', '');
  if (q.groupId) query.andWhere({ subject_type: 'group', subject_id: q.groupId });
  if (q.userId) query.andWhere({ subject_type: 'user', subject_id: q.userId });
  const rows = (await keyset(query, BY_ID, q.cursor ? decodeCursor(q.cursor, 1) : undefined, q.limit)) as Row[];
  const page = pageFrom(rows, q.limit, (r) => [String(r.id)]);
  return { grants: page.rows.map(grantFromRow), nextCursor: page.nextCursor };
}

/** Each grant's subject by name: the group's name or the user's email (null when gone). */
export async function subjectNames(db: Knex, tenantId: string, grants: Grant[]): Promise<Map<string, string | null>> {
  const ids = (type: SubjectType) => [...new Set(grants.filter((g) => g.subjectType === type).map((g) => g.subjectId))];
  const names = new Map<string, string | null>();
  const groups = ids('group');
  const users = ids('user');
  for (const r of await inChunks(db, groups, (part) =>
    db('local_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'),
  ))
    names.set(`group:${r.id}`, String(r.name));
  for (const r of await inChunks(db, users, (part) =>
    db('users').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'email'),
  ))
    names.set(`user:${r.id}`, (r.email as string | null) ?? null);
  return new Map(grants.map((g) => [g.id, names.get(`${g.subjectType}:${g.subjectId}`) ?? null]));
}

export interface ManualGrant extends GrantWindow {
  agentId: string;
  subjectType: SubjectType;
  subjectId: string;
  permission: Permission;
}

/** A manual grant identical to this one, if the agent already has it. */
export async function findManualGrant(db: Knex, tenantId: string, g: ManualGrant): Promise<Grant | undefined> {
  const row = await db('agent_grants')
    .where({
      tenant_id: tenantId,
      agent_id: g.agentId,
      subject_type: g.subjectType,
      subject_id: g.subjectId,
      permission: g.permission,
      time_zone: g.timeZone,
      rule_id: '',
      idp_group_id: '',
    })
    .andWhere((w) => (g.startDate === null ? w.whereNull('start_date') : w.where('start_date', g.startDate)))
    .andWhere((w) => (g.endDate === null ? w.whereNull('end_date') : w.where('end_date', g.endDate)))
    .first();
  return row ? grantFromRow(row) : undefined;
}

export async function insertManualGrant(trx: Knex, tenantId: string, g: ManualGrant, now: number): Promise<Grant> {
  const row = {
    tenant_id: tenantId,
    id: newId(),
    agent_id: g.agentId,
    subject_type: g.subjectType,
    subject_id: g.subjectId,
    permission: g.permission,
    start_date: g.startDate,
    end_date: g.endDate,
    time_zone: g.timeZone,
    rule_id: '',
    idp_group_id: '',
    created_at: now,
  };
  await trx('agent_grants').insert(row);
  return grantFromRow(row);
}

export async function writeGrant(
  trx: Knex,
  g: Grant,
  change: { permission: Permission } & GrantWindow,
): Promise<Grant> {
  await trx('agent_grants').where({ tenant_id: g.tenantId, id: g.id }).update({
    permission: change.permission,
    start_date: change.startDate,
    end_date: change.endDate,
    time_zone: change.timeZone,
  });
  return { ...g, ...change };
}

export async function deleteGrantRow(trx: Knex, tenantId: string, id: string): Promise<void> {
  await trx('agent_grants').where({ tenant_id: tenantId, id }).delete();
}

async function removeSubjectGrants(
  trx: Knex,
  tenantId: string,
  subjectType: SubjectType,
  subjectId: string,
): Promise<Grant[]> {
  const where = { tenant_id: tenantId, subject_type: subjectType, subject_id: subjectId };
  const removed = (await trx('agent_grants').where(where).orderBy('id')).map(grantFromRow);
  if (removed.length) await trx('agent_grants').where(where).delete();
  return removed;
}

/** Removes every grant held by a group, manual and derived (the group is going away). */
export function removeGroupGrants(trx: Knex, tenantId: string, groupId: string): Promise<Grant[]> {
  return removeSubjectGrants(trx, tenantId, 'group', groupId);
}

/**
 * Removes every grant held directly by a user, manual and derived, and answers them. A grant's
 * subject is a group or a user, so no foreign key cascades from users: deleting a user must
 * call this in the same transaction.
 */
export function removeUserGrants(trx: Knex, tenantId: string, userId: string): Promise<Grant[]> {
  return removeSubjectGrants(trx, tenantId, 'user', userId);
}
