import type { Knex } from 'knex';
import { inChunks } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { toMs } from '../db/rows.js';
import { noRowChanged } from '../db/versioned.js';
import { NotFound } from '../errors.js';

/** Agents the host platform registers (seed 004), with who may reach them. */

export type AccessType = 'organization' | 'groups' | 'private';

export interface Agent {
  tenantId: string;
  id: string;
  name: string;
  description: string | null;
  accessType: AccessType;
  /** The person the agent was registered for; null when the platform registered it alone. */
  createdBy: string | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

type Row = Record<string, unknown>;

function agentFromRow(r: Row): Agent {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    name: String(r.name),
    description: (r.description as string | null) ?? null,
    accessType: r.access_type as AccessType,
    createdBy: (r.created_by as string | null) ?? null,
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
}

function notFound(id: string): NotFound {
  return new NotFound('agent_not_found', `no agent with id "${id}"`);
}

export async function getAgent(db: Knex, tenantId: string, id: string): Promise<Agent | undefined> {
  const row = await db('agents').where({ tenant_id: tenantId, id }).first();
  return row ? agentFromRow(row) : undefined;
}

export async function requireAgent(db: Knex, tenantId: string, id: string): Promise<Agent> {
  const a = await getAgent(db, tenantId, id);
  if (!a) throw notFound(id);
  return a;
}

export async function agentNames(db: Knex, tenantId: string, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const unique = [...new Set(ids)];
  for (const r of await inChunks(db, unique, (part) =>
    db('agents').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'),
  ))
    out.set(String(r.id), String(r.name));
  return out;
}

export interface AgentListQuery {
  accessType?: AccessType;
  createdBy?: string;
  limit: number;
  cursor?: string;
}

// Ids are time-ordered (uuid v7): by id is by registration.
const BY_ID: KeyColumn[] = [{ sql: 'id', dir: 'asc' }];

export async function listAgents(
  db: Knex,
  tenantId: string,
  q: AgentListQuery,
): Promise<{ agents: Agent[]; nextCursor: string | null }> {
  const query = db('agents').where({ tenant_id: tenantId });
  if (q.accessType) query.andWhere('access_type', q.accessType);
  if (q.createdBy) query.andWhere('created_by', q.createdBy);
  const rows = (await keyset(query, BY_ID, q.cursor ? decodeCursor(q.cursor, 1) : undefined, q.limit)) as Row[];
  const page = pageFrom(rows, q.limit, (r) => [String(r.id)]);
  return { agents: page.rows.map(agentFromRow), nextCursor: page.nextCursor };
}

export interface AgentInput {
  name: string;
  description?: string | null;
  accessType: AccessType;
  createdBy?: string | null;
}

export async function insertAgent(trx: Knex, tenantId: string, input: AgentInput, now: number): Promise<Agent> {
  const row = {
    tenant_id: tenantId,
    id: newId(),
    name: input.name.trim(),
    description: input.description ?? null,
    access_type: input.accessType,
    created_by: input.createdBy ?? null,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  await trx('agents').insert(row);
  return agentFromRow(row);
}

/**
 * Takes an agent for a change (version bump). Grant and data-source changes take it too, so
 * every change to one agent's access queues behind the others.
 */
export async function lockAgent(trx: Knex, tenantId: string, id: string, now: number): Promise<Agent> {
  const changed = await trx('agents')
    .where({ tenant_id: tenantId, id })
    .update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0) await noRowChanged(trx, 'agents', { tenant_id: tenantId, id }, undefined, notFound(id), 'agent');
  return (await getAgent(trx, tenantId, id))!;
}

export interface AgentChange {
  name?: string;
  description?: string | null;
  accessType?: AccessType;
}

export async function writeAgent(trx: Knex, locked: Agent, change: AgentChange): Promise<Agent> {
  const next: Agent = {
    ...locked,
    ...(change.name !== undefined ? { name: change.name.trim() } : {}),
    ...(change.description !== undefined ? { description: change.description } : {}),
    ...(change.accessType !== undefined ? { accessType: change.accessType } : {}),
  };
  await trx('agents')
    .where({ tenant_id: locked.tenantId, id: locked.id })
    .update({ name: next.name, description: next.description, access_type: next.accessType });
  return next;
}

/** Deletes an agent; its grants, data sources and their group restrictions go by cascade. */
export async function deleteAgentRow(
  trx: Knex,
  tenantId: string,
  id: string,
): Promise<{ grants: number; dataSources: number }> {
  const grants = Number(
    (await trx('agent_grants').where({ tenant_id: tenantId, agent_id: id }).count({ n: '*' }).first())?.n ?? 0,
  );
  const dataSources = Number(
    (await trx('agent_data_sources').where({ tenant_id: tenantId, agent_id: id }).count({ n: '*' }).first())?.n ?? 0,
  );
  await trx('agents').where({ tenant_id: tenantId, id }).delete();
  return { grants, dataSources };
}
