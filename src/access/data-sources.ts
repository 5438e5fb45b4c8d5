import type { Knex } from 'knex';
import { eachChunk, inChunks, insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { toMs } from '../db/rows.js';
import { NotFound } from '../errors.js';

/**
 * An agent's data sources (seed 004): open to everyone who may use the agent, or restricted to
 * named groups (and their descendants).
 */

export type DataSourceAccess = 'all_agent_users' | 'groups';

export interface DataSource {
  tenantId: string;
  id: string;
  agentId: string;
  name: string;
  access: DataSourceAccess;
  /** The groups of a restricted source; empty for all_agent_users. */
  groupIds: string[];
  createdAt: number;
}

type Row = Record<string, unknown>;

function sourceFromRow(r: Row, groupIds: string[]): DataSource {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    agentId: String(r.agent_id),
    name: String(r.name),
    access: r.access as DataSourceAccess,
    groupIds,
    createdAt: toMs(r.created_at)!,
  };
}

async function withGroups(db: Knex, tenantId: string, rows: Row[]): Promise<DataSource[]> {
  if (!rows.length) return [];
  const links = await inChunks(
    db,
    rows.map((r) => String(r.id)),
    (part) =>
      db('data_source_groups')
        .where({ tenant_id: tenantId })
        .whereIn('data_source_id', part)
        .orderBy(['data_source_id', 'group_id']),
  );
  const bySource = new Map<string, string[]>();
  for (const l of links)
    bySource.set(String(l.data_source_id), [...(bySource.get(String(l.data_source_id)) ?? []), String(l.group_id)]);
  return rows.map((r) => sourceFromRow(r, bySource.get(String(r.id)) ?? []));
}

/** An agent's data sources, oldest first (an agent has a handful, so no paging). */
export async function listDataSources(db: Knex, tenantId: string, agentId: string): Promise<DataSource[]> {
  return withGroups(
    db,
    tenantId,
    await db('agent_data_sources').where({ tenant_id: tenantId, agent_id: agentId }).orderBy('id'),
  );
}

export async function requireDataSource(db: Knex, tenantId: string, agentId: string, id: string): Promise<DataSource> {
  const row = await db('agent_data_sources').where({ tenant_id: tenantId, agent_id: agentId, id }).first();
  if (!row) throw new NotFound('data_source_not_found', `no data source with id "${id}" on this agent`);
  return (await withGroups(db, tenantId, [row]))[0]!;
}

async function linkGroups(trx: Knex, tenantId: string, sourceId: string, groupIds: string[]): Promise<void> {
  await insertChunked(
    trx,
    'data_source_groups',
    groupIds.map((g) => ({ tenant_id: tenantId, data_source_id: sourceId, group_id: g })),
  );
}

export interface DataSourceInput {
  name: string;
  access: DataSourceAccess;
  groupIds: string[];
}

export async function insertDataSource(
  trx: Knex,
  tenantId: string,
  agentId: string,
  input: DataSourceInput,
  now: number,
): Promise<DataSource> {
  const row = {
    tenant_id: tenantId,
    id: newId(),
    agent_id: agentId,
    name: input.name.trim(),
    access: input.access,
    created_at: now,
  };
  await trx('agent_data_sources').insert(row);
  await linkGroups(trx, tenantId, row.id, input.groupIds);
  return sourceFromRow(row, [...input.groupIds].sort());
}

/** Replaces a source's name, access and groups (groups of all_agent_users are none). */
export async function writeDataSource(trx: Knex, ds: DataSource, next: DataSourceInput): Promise<DataSource> {
  await trx('agent_data_sources')
    .where({ tenant_id: ds.tenantId, id: ds.id })
    .update({ name: next.name.trim(), access: next.access });
  const keep = new Set(next.groupIds);
  const dropped = ds.groupIds.filter((g) => !keep.has(g));
  await eachChunk(trx, dropped, (part) =>
    trx('data_source_groups')
      .where({ tenant_id: ds.tenantId, data_source_id: ds.id })
      .whereIn('group_id', part)
      .delete(),
  );
  const had = new Set(ds.groupIds);
  await linkGroups(
    trx,
    ds.tenantId,
    ds.id,
    next.groupIds.filter((g) => !had.has(g)),
  );
  return { ...ds, name: next.name.trim(), access: next.access, groupIds: [...next.groupIds].sort() };
}

export async function deleteDataSourceRow(trx: Knex, tenantId: string, id: string): Promise<void> {
  await trx('data_source_groups').where({ tenant_id: tenantId, data_source_id: id }).delete();
  await trx('agent_data_sources').where({ tenant_id: tenantId, id }).delete();
}

/**
 * Takes a group out of every restriction naming it and answers the sources as they were. A
 * source left with no group stays restricted (to no one but admins and a private agent's
 * creator): losing its group must not open it to every user of the agent.
 */
export async function removeGroupFromDataSources(trx: Knex, tenantId: string, groupId: string): Promise<DataSource[]> {
  const ids = (
    await trx('data_source_groups').where({ tenant_id: tenantId, group_id: groupId }).select('data_source_id')
  ).map((r: Row) => String(r.data_source_id));
  if (!ids.length) return [];
  const rows = await inChunks(trx, ids.sort(), (part) =>
    trx('agent_data_sources').where({ tenant_id: tenantId }).whereIn('id', part).orderBy('id'),
  );
  const before = await withGroups(trx, tenantId, rows);
  await trx('data_source_groups').where({ tenant_id: tenantId, group_id: groupId }).delete();
  return before;
}
