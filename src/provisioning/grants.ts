import type { Knex } from 'knex';
import { lockAgent } from '../access/agents.js';
import {
  checkWindow,
  deleteGrantRow,
  findManualGrant,
  insertManualGrant,
  isManual,
  requireGrant,
  subjectNames,
  writeGrant,
  type Grant,
  type Permission,
} from '../access/grants.js';
import { requireAdmin, type Principal } from '../access/principal.js';
import { recordEvents } from '../audit/record.js';
import type { Ctx } from '../context.js';
import { currentRead } from '../db/dialect.js';
import type { Db } from '../db/knex.js';
import { Conflict, InvalidInput, Unprocessable } from '../errors.js';
import { getTenant } from '../tenants/store.js';
import { agentEntity, grantAudit } from './workspace-audit.js';
import { activeGroups } from './workspace-checks.js';

/**
 * Commands on an agent's manual grants. Each runs in one transaction: lock the agent (version
 * bump), authorize, mutate, record the audit events, answer.
 */

async function subjectName(trx: Knex, tenantId: string, g: Grant): Promise<string | null> {
  return (await subjectNames(trx, tenantId, [g])).get(g.id) ?? null;
}

export interface GrantInput {
  groupId?: string;
  userId?: string;
  permission: Permission;
  startDate?: string | null;
  endDate?: string | null;
  timeZone?: string;
}

function manualOnly(g: Grant): void {
  if (!isManual(g)) {
    throw new Conflict(
      'rule_grant',
      `grant "${g.id}" comes from mapping rule "${g.ruleId}"; change the rule or the IdP group instead`,
      { details: { ruleId: g.ruleId, idpGroupId: g.idpGroupId } },
    );
  }
}

/**
 * Grants an agent to a group or a user, optionally between two local dates; the time zone
 * defaults to the tenant's and is stored resolved, so a later change of the tenant's zone
 * moves no existing window.
 */
export async function createGrant(db: Db, ctx: Ctx, p: Principal, agentId: string, input: GrantInput): Promise<Grant> {
  requireAdmin(p, "manage an agent's permissions");
  if ((input.groupId === undefined) === (input.userId === undefined)) {
    const message = input.groupId === undefined ? 'groupId or userId is required' : 'give groupId or userId, not both';
    throw new InvalidInput('invalid_subject', message, { fields: [{ path: 'body.groupId', message }] });
  }
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const window = checkWindow({
      startDate: input.startDate ?? null,
      endDate: input.endDate ?? null,
      timeZone: input.timeZone ?? (await getTenant(trx, ctx.tenantId)).timeZone,
    });
    if (agent.accessType === 'private') {
      throw new Unprocessable(
        'private_agent',
        `agent "${agent.name}" is private (its creator and admins only) and takes no grants; change its access type first`,
      );
    }
    let name: string | null;
    if (input.groupId !== undefined) {
      name = (await activeGroups(trx, ctx.tenantId, [input.groupId], 'body.groupId')).get(input.groupId)!.name;
    } else {
      const user = await currentRead(
        trx('users').where({ tenant_id: ctx.tenantId, id: input.userId }).select('email'),
      ).first();
      if (!user)
        throw new Unprocessable('unknown_user', `no user with id "${input.userId}"`, {
          fields: [{ path: 'body.userId', message: 'names no user of this tenant' }],
        });
      name = (user.email as string | null) ?? null;
    }
    const wanted = {
      agentId,
      subjectType: input.groupId !== undefined ? ('group' as const) : ('user' as const),
      subjectId: (input.groupId ?? input.userId)!,
      permission: input.permission,
      ...window,
    };
    const same = await findManualGrant(trx, ctx.tenantId, wanted);
    if (same)
      throw new Conflict('grant_exists', `agent "${agent.name}" already has this grant (${same.id})`, {
        details: { grantId: same.id },
      });
    const g = await insertManualGrant(trx, ctx.tenantId, wanted, ctx.now.getTime());
    await recordEvents(trx, ctx, [
      {
        event: 'agent.grant_created',
        entity: agentEntity(agent),
        before: null,
        after: grantAudit(g, agent.name, name),
      },
    ]);
    return g;
  });
}

export interface GrantChange {
  permission?: Permission;
  startDate?: string | null;
  endDate?: string | null;
  timeZone?: string;
}

/** Changes a manual grant's level or window; a rule's grant is the rule's to change (409). */
export async function updateGrant(
  db: Db,
  ctx: Ctx,
  p: Principal,
  agentId: string,
  grantId: string,
  change: GrantChange,
): Promise<Grant> {
  requireAdmin(p, "manage an agent's permissions");
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const g = await requireGrant(trx, ctx.tenantId, agentId, grantId);
    manualOnly(g);
    const window = checkWindow({
      startDate: change.startDate !== undefined ? change.startDate : g.startDate,
      endDate: change.endDate !== undefined ? change.endDate : g.endDate,
      timeZone: change.timeZone ?? g.timeZone,
    });
    const next = await writeGrant(trx, g, { permission: change.permission ?? g.permission, ...window });
    const name = await subjectName(trx, ctx.tenantId, g);
    if (JSON.stringify(grantAudit(g, agent.name, name)) !== JSON.stringify(grantAudit(next, agent.name, name))) {
      await recordEvents(trx, ctx, [
        {
          event: 'agent.grant_changed',
          entity: agentEntity(agent),
          before: grantAudit(g, agent.name, name),
          after: grantAudit(next, agent.name, name),
        },
      ]);
    }
    return next;
  });
}

export async function deleteGrant(db: Db, ctx: Ctx, p: Principal, agentId: string, grantId: string): Promise<void> {
  requireAdmin(p, "manage an agent's permissions");
  await db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const g = await requireGrant(trx, ctx.tenantId, agentId, grantId);
    manualOnly(g);
    await deleteGrantRow(trx, ctx.tenantId, grantId);
    await recordEvents(trx, ctx, [
      {
        event: 'agent.grant_removed',
        entity: agentEntity(agent),
        before: grantAudit(g, agent.name, await subjectName(trx, ctx.tenantId, g)),
        after: null,
      },
    ]);
  });
}
