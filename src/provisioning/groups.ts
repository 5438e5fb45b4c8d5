import type { Knex } from 'knex';
import { agentNames } from '../access/agents.js';
import type { Area } from '../access/catalogue.js';
import { removeGroupFromDataSources } from '../access/data-sources.js';
import { removeGroupGrants } from '../access/grants.js';
import {
  assertNoCycle,
  childGroups,
  currentGroups,
  deleteLocalGroupRow,
  groupNames,
  insertLocalGroup,
  lockLocalGroup,
  memberCounts,
  writeLocalGroup,
  type GroupChange,
  type GroupInput,
  type LocalGroup,
} from '../access/local-groups.js';
import { assertMayShapeGroup } from '../access/policies.js';
import { requireUserManager, type Principal } from '../access/principal.js';
import { recordEvents, type AuditInput } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { Conflict, Unprocessable } from '../errors.js';
import { agentEntity, grantAudit, groupEntity, sourceAudit } from './workspace-audit.js';
import { checkedName, quoted } from './workspace-checks.js';

/**
 * Commands on local groups: create, change (rename, move, archive), delete. Each runs in one
 * transaction: lock (version bump), authorize, mutate, record the audit events, answer.
 */

const groupFields = (g: LocalGroup) => ({
  name: g.name,
  description: g.description,
  parentId: g.parentId,
  status: g.status,
});

async function existingParent(trx: Knex, tenantId: string, parentId: string): Promise<void> {
  if (!(await currentGroups(trx, tenantId, [parentId])).size) {
    throw new Unprocessable('unknown_group', `no group with id "${parentId}" to be the parent`, {
      fields: [{ path: 'body.parentId', message: 'names no group of this tenant' }],
    });
  }
}

export async function createGroup(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  input: GroupInput,
): Promise<LocalGroup> {
  requireUserManager(p, catalogue, 'create groups');
  const name = checkedName(input.name, 'body.name');
  return db.tx(async (trx) => {
    if (input.parentId) await existingParent(trx, ctx.tenantId, input.parentId);
    await assertMayShapeGroup(trx, p, ctx.tenantId, null, { parentId: input.parentId ?? null });
    const g = await insertLocalGroup(trx, ctx.tenantId, { ...input, name }, ctx.now.getTime());
    await recordEvents(trx, ctx, [
      { event: 'group.created', entity: groupEntity(g), before: null, after: groupFields(g) },
    ]);
    return g;
  });
}

/** Renames, re-describes, moves (refusing cycles) or archives a group. */
export async function updateGroup(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  id: string,
  change: GroupChange,
): Promise<LocalGroup> {
  requireUserManager(p, catalogue, 'change groups');
  if (change.name !== undefined) checkedName(change.name, 'body.name');
  return db.tx(async (trx) => {
    const locked = await lockLocalGroup(trx, ctx.tenantId, id, ctx.now.getTime());
    if (change.parentId && change.parentId !== locked.parentId) {
      await existingParent(trx, ctx.tenantId, change.parentId);
      await assertNoCycle(trx, locked, change.parentId);
    }
    await assertMayShapeGroup(trx, p, ctx.tenantId, locked, change);
    const next = await writeLocalGroup(trx, locked, change);
    const was = groupFields(locked);
    const is = groupFields(next);
    const changed = (Object.keys(is) as (keyof typeof is)[]).filter((k) => was[k] !== is[k]);
    if (changed.length) {
      const pick = (f: typeof is) => Object.fromEntries(changed.map((k) => [k, f[k]]));
      await recordEvents(trx, ctx, [
        { event: 'group.updated', entity: groupEntity(next), before: pick(was), after: pick(is) },
      ]);
    }
    return next;
  });
}

/**
 * Deletes a group with its memberships, its grants and its place in data-source restrictions.
 * A group with child groups is refused (409, listing them): deleting it would silently move
 * their members out from under the grants they inherit.
 */
export async function deleteGroup(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, id: string): Promise<void> {
  requireUserManager(p, catalogue, 'delete groups');
  await db.tx(async (trx) => {
    const locked = await lockLocalGroup(trx, ctx.tenantId, id, ctx.now.getTime());
    const children = await childGroups(trx, ctx.tenantId, id);
    if (children.length) {
      throw new Conflict(
        'group_has_children',
        `group "${locked.name}" has child groups ${quoted(children.map((c) => c.name))}; move or delete them first`,
        { details: { children } },
      );
    }
    const memberCount = (await memberCounts(trx, ctx.tenantId, [id])).get(id) ?? 0;
    const grants = await removeGroupGrants(trx, ctx.tenantId, id);
    const sources = await removeGroupFromDataSources(trx, ctx.tenantId, id);
    const agents = await agentNames(trx, ctx.tenantId, [
      ...grants.map((g) => g.agentId),
      ...sources.map((s) => s.agentId),
    ]);
    const names = await groupNames(
      trx,
      ctx.tenantId,
      sources.flatMap((s) => s.groupIds),
    );
    await deleteLocalGroupRow(trx, ctx.tenantId, id);
    const events: AuditInput[] = [
      {
        event: 'group.deleted',
        entity: groupEntity(locked),
        before: { ...groupFields(locked), memberCount },
        after: null,
      },
    ];
    for (const g of grants) {
      const agent = { id: g.agentId, name: agents.get(g.agentId) ?? g.agentId };
      events.push({
        event: 'agent.grant_removed',
        entity: agentEntity(agent),
        before: grantAudit(g, agent.name, locked.name),
        after: null,
      });
    }
    for (const s of sources) {
      events.push({
        event: 'agent.data_sources_changed',
        entity: agentEntity({ id: s.agentId, name: agents.get(s.agentId) ?? s.agentId }),
        before: { dataSource: sourceAudit(s, names) },
        after: { dataSource: sourceAudit({ ...s, groupIds: s.groupIds.filter((g) => g !== id) }, names) },
      });
    }
    await recordEvents(trx, ctx, events);
  });
}
