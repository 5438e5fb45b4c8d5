import { lockAgent } from '../access/agents.js';
import {
  deleteDataSourceRow,
  insertDataSource,
  requireDataSource,
  writeDataSource,
  type DataSource,
  type DataSourceAccess,
} from '../access/data-sources.js';
import { groupNames } from '../access/local-groups.js';
import { requireAdmin, type Principal } from '../access/principal.js';
import { recordEvents } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { InvalidInput } from '../errors.js';
import { agentEntity, sourceAudit } from './workspace-audit.js';
import { activeGroups, checkedName } from './workspace-checks.js';

/**
 * Commands on an agent's data sources. Each runs in one transaction: lock the agent (version
 * bump), authorize, mutate, record the audit events, answer.
 */

export interface DataSourceBody {
  name?: string;
  access?: DataSourceAccess;
  groupIds?: string[];
}

/** groupIds are required with access `groups` and refused with `all_agent_users`. */
function checkRestriction(access: DataSourceAccess, groupIds: string[]): void {
  if (access === 'groups' && !groupIds.length) {
    throw new InvalidInput('groups_required', 'a data source restricted to groups needs at least one group', {
      fields: [{ path: 'body.groupIds', message: 'is required when access is groups' }],
    });
  }
  if (access === 'all_agent_users' && groupIds.length) {
    throw new InvalidInput('groups_not_allowed', 'a data source open to all agent users names no groups', {
      fields: [{ path: 'body.groupIds', message: 'is allowed only when access is groups' }],
    });
  }
}

export async function createDataSource(
  db: Db,
  ctx: Ctx,
  p: Principal,
  agentId: string,
  body: Required<Pick<DataSourceBody, 'name' | 'access'>> & DataSourceBody,
): Promise<DataSource> {
  requireAdmin(p, "manage an agent's data sources");
  const name = checkedName(body.name, 'body.name');
  const groupIds = [...new Set(body.groupIds ?? [])];
  checkRestriction(body.access, groupIds);
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const groups = await activeGroups(trx, ctx.tenantId, groupIds, 'body.groupIds');
    const ds = await insertDataSource(
      trx,
      ctx.tenantId,
      agentId,
      { name, access: body.access, groupIds },
      ctx.now.getTime(),
    );
    const names = new Map([...groups].map(([id, g]) => [id, g.name]));
    await recordEvents(trx, ctx, [
      {
        event: 'agent.data_sources_changed',
        entity: agentEntity(agent),
        before: null,
        after: { dataSource: sourceAudit(ds, names) },
      },
    ]);
    return ds;
  });
}

/** Changes a source's name or restriction; groups newly named must exist and be active. */
export async function updateDataSource(
  db: Db,
  ctx: Ctx,
  p: Principal,
  agentId: string,
  id: string,
  body: DataSourceBody,
): Promise<DataSource> {
  requireAdmin(p, "manage an agent's data sources");
  if (body.name !== undefined) checkedName(body.name, 'body.name');
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const ds = await requireDataSource(trx, ctx.tenantId, agentId, id);
    const access = body.access ?? ds.access;
    const groupIds = body.groupIds ? [...new Set(body.groupIds)] : access === 'groups' ? ds.groupIds : [];
    checkRestriction(access, groupIds);
    const had = new Set(ds.groupIds);
    await activeGroups(
      trx,
      ctx.tenantId,
      groupIds.filter((g) => !had.has(g)),
      'body.groupIds',
    );
    const next = await writeDataSource(trx, ds, { name: body.name ?? ds.name, access, groupIds });
    const names = await groupNames(trx, ctx.tenantId, [...ds.groupIds, ...next.groupIds]);
    const before = sourceAudit(ds, names);
    const after = sourceAudit(next, names);
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      await recordEvents(trx, ctx, [
        {
          event: 'agent.data_sources_changed',
          entity: agentEntity(agent),
          before: { dataSource: before },
          after: { dataSource: after },
        },
      ]);
    }
    return next;
  });
}

export async function deleteDataSource(db: Db, ctx: Ctx, p: Principal, agentId: string, id: string): Promise<void> {
  requireAdmin(p, "manage an agent's data sources");
  await db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const ds = await requireDataSource(trx, ctx.tenantId, agentId, id);
    const names = await groupNames(trx, ctx.tenantId, ds.groupIds);
    await deleteDataSourceRow(trx, ctx.tenantId, id);
    await recordEvents(trx, ctx, [
      {
        event: 'agent.data_sources_changed',
        entity: agentEntity(agent),
        before: { dataSource: sourceAudit(ds, names) },
        after: null,
      },
    ]);
  });
}
