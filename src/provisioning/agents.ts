import {
  deleteAgentRow,
  insertAgent,
  lockAgent,
  writeAgent,
  type Agent,
  type AgentChange,
  type AgentInput,
} from '../access/agents.js';
import { isAdmin, requireAdmin, type Principal } from '../access/principal.js';
import { recordEvents, type AuditInput } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { Forbidden, Unprocessable } from '../errors.js';
import { agentEntity } from './workspace-audit.js';
import { checkedName } from './workspace-checks.js';

/**
 * Commands on agents: register, change, delete. Each runs in one transaction: lock (version
 * bump), authorize, mutate, record the audit events, answer.
 */

const agentFields = (a: Agent) => ({
  name: a.name,
  description: a.description,
  accessType: a.accessType,
  createdBy: a.createdBy,
});

/** Registers an agent, optionally on behalf of a user who becomes its creator. Admins only. */
export async function createAgent(db: Db, ctx: Ctx, p: Principal, input: AgentInput): Promise<Agent> {
  requireAdmin(p, 'register agents');
  const name = checkedName(input.name, 'body.name');
  return db.tx(async (trx) => {
    if (input.createdBy && !(await trx('users').where({ tenant_id: ctx.tenantId, id: input.createdBy }).first())) {
      throw new Unprocessable('unknown_user', `no user with id "${input.createdBy}" to be the creator`, {
        fields: [{ path: 'body.createdBy', message: 'names no user of this tenant' }],
      });
    }
    const a = await insertAgent(trx, ctx.tenantId, { ...input, name }, ctx.now.getTime());
    await recordEvents(trx, ctx, [
      { event: 'agent.created', entity: agentEntity(a), before: null, after: agentFields(a) },
    ]);
    return a;
  });
}

/**
 * Changes an agent. Admins change anything; the agent's creator may change its name and
 * description; the access type is for admins only.
 */
export async function updateAgent(db: Db, ctx: Ctx, p: Principal, id: string, change: AgentChange): Promise<Agent> {
  if (change.name !== undefined) checkedName(change.name, 'body.name');
  return db.tx(async (trx) => {
    const locked = await lockAgent(trx, ctx.tenantId, id, ctx.now.getTime());
    if (!isAdmin(p)) {
      if (p.kind !== 'user' || locked.createdBy !== p.user.id)
        throw new Forbidden('not_allowed', `only admins and its creator may change agent "${locked.name}"`);
      if (change.accessType !== undefined && change.accessType !== locked.accessType)
        requireAdmin(p, "change an agent's access type");
    }
    const next = await writeAgent(trx, locked, change);
    const events: AuditInput[] = [];
    if (next.name !== locked.name || next.description !== locked.description) {
      const diff = (a: Agent) => ({
        ...(next.name !== locked.name ? { name: a.name } : {}),
        ...(next.description !== locked.description ? { description: a.description } : {}),
      });
      events.push({ event: 'agent.updated', entity: agentEntity(next), before: diff(locked), after: diff(next) });
    }
    if (next.accessType !== locked.accessType) {
      events.push({
        event: 'agent.access_type_changed',
        entity: agentEntity(next),
        before: { accessType: locked.accessType },
        after: { accessType: next.accessType },
      });
    }
    await recordEvents(trx, ctx, events);
    return next;
  });
}

export async function deleteAgent(db: Db, ctx: Ctx, p: Principal, id: string): Promise<void> {
  requireAdmin(p, 'delete agents');
  await db.tx(async (trx) => {
    const locked = await lockAgent(trx, ctx.tenantId, id, ctx.now.getTime());
    const removed = await deleteAgentRow(trx, ctx.tenantId, id);
    await recordEvents(trx, ctx, [
      {
        event: 'agent.deleted',
        entity: agentEntity(locked),
        before: { ...agentFields(locked), grantCount: removed.grants, dataSourceCount: removed.dataSources },
        after: null,
      },
    ]);
  });
}
