import type { Knex } from 'knex';
import { agentNames } from './agents.js';
import type { Area } from './catalogue.js';
import { effectivePermissions, type EffectiveTree } from './effective.js';
import type { AreaSettings } from './levels.js';
import { effectiveRole, groupChain, rightsCarried, type GroupChange, type LocalGroup } from './local-groups.js';
import { canManageUsers, isAdmin, requireUserManager, type Principal } from './principal.js';
import type { RoleTemplate } from './templates.js';
import { inChunks } from '../db/batch.js';
import { currentRead } from '../db/dialect.js';
import type { User } from '../directory/users.js';
import { Forbidden } from '../errors.js';

/**
 * Who may change what (seed 003): admins change anything; members holding manage on the
 * user-management area change members, and never give anyone more than they hold themselves.
 */

/** What a member with these settings would hold once active: the escalation check compares it. */
export function wouldHold(
  catalogue: Area[],
  own: AreaSettings,
  template: Pick<RoleTemplate, 'id' | 'name' | 'areas'> | null,
): EffectiveTree {
  return effectivePermissions(catalogue, {
    role: 'member',
    status: 'active',
    own,
    template: template ? { id: template.id, name: template.name, areas: template.areas } : null,
  });
}

/**
 * Refuses a grant beyond the acting member's own effective permissions, naming the first area.
 * Only what the change adds counts (`previous` is what the target held before), so a member may
 * still narrow someone who holds more than they do.
 */
export function assertWithinOwn(p: Principal, resulting: EffectiveTree, previous?: EffectiveTree): void {
  if (isAdmin(p) || p.kind !== 'user') return;
  for (const [key, area] of Object.entries(resulting)) {
    const mine = p.effective[key]?.actions ?? [];
    const had = previous?.[key]?.actions ?? [];
    const extra = area.actions.filter((a) => !mine.includes(a) && !had.includes(a));
    if (extra.length) {
      throw new Forbidden(
        'beyond_own_permissions',
        `you cannot grant ${extra.join(', ')} on ${key}: you hold ${p.effective[key]?.level ?? 'none'} there yourself`,
        {
          details: { area: key },
        },
      );
    }
  }
}

/** May the principal change this user at all? Members never change admins. */
export function assertMayChangeUser(p: Principal, catalogue: Area[], target: User, what: string): void {
  requireUserManager(p, catalogue, what);
  if (!isAdmin(p) && target.role === 'admin')
    throw new Forbidden('admin_required', `only admins may ${what} of an admin`);
}

/**
 * A user's email is what their first sign-in through any connection matches on, and every
 * user is the IdP's (scim, jit) or was invited at an address: pointing it elsewhere hands all
 * the user holds (agent access, group roles, area permissions) to whoever owns the new address,
 * which no non-admin could grant directly. So only admins change it.
 */
export function assertMayChangeEmail(p: Principal): void {
  if (!isAdmin(p))
    throw new Forbidden('admin_required', "only admins may change a user's email: it decides who signs in as them");
}

export function assertMayAssignRole(p: Principal, role: User['role']): void {
  if (role === 'admin' && !isAdmin(p)) throw new Forbidden('admin_required', 'only admins may make someone an admin');
}

export function assertMayGrantCrm(p: Principal, crmAccess: boolean): void {
  if (crmAccess && p.kind === 'user' && !isAdmin(p) && !p.user.crmAccess) {
    throw new Forbidden('beyond_own_permissions', 'you cannot grant CRM access: you do not hold it yourself');
  }
}

/** Reading a user's account and permissions: user managers, and every user about themselves. */
export function assertMayReadUser(p: Principal, catalogue: Area[], userId: string): void {
  if (p.kind === 'user' && p.user.id === userId) return;
  if (!canManageUsers(p, catalogue)) throw new Forbidden('not_allowed', 'you may read only your own account');
}

// ---- group membership, managers and parents ----

/**
 * Who may grant an agent's access directly: whoever may change its grants and data sources,
 * which seed 004 gives to admins only (the grant and data-source commands require it too).
 */
function mayGrantAgentAccess(p: Principal): boolean {
  return isAdmin(p);
}

async function activeGroups(trx: Knex, tenantId: string, ids: string[]): Promise<string[]> {
  if (!ids.length) return [];
  const rows = await inChunks<string, Record<string, unknown>>(trx, ids, (part) =>
    currentRead(trx('local_groups').where({ tenant_id: tenantId, status: 'active' }).whereIn('id', part).select('id')),
  );
  return rows.map((r: Record<string, unknown>) => String(r.id));
}

/**
 * Refuses a change that gives people what the groups in `after` carry beyond what `before`
 * already gave them, unless the principal could grant each of those agent rights directly.
 * Membership of a group is membership of its ancestors, so a new member, a new manager (edit on
 * the agents granted) and a group moved under a new parent all receive the chain's rights.
 */
async function assertMayPassOn(
  trx: Knex,
  tenantId: string,
  p: Principal,
  after: string[],
  before: string[],
  what: string,
): Promise<void> {
  if (mayGrantAgentAccess(p)) return;
  // Only what active groups carry was held before: an archived group gives nothing, so a right
  // it shares with the new chain (a data source restricted to both) is still fresh.
  const active = await activeGroups(trx, tenantId, before);
  const had = new Set((await rightsCarried(trx, tenantId, active)).map((r) => r.id));
  const fresh = (await rightsCarried(trx, tenantId, after)).filter((r) => !had.has(r.id));
  if (!fresh.length) return;
  const names = await agentNames(
    trx,
    tenantId,
    fresh.map((r) => r.agentId),
  );
  const agents = [...new Set(fresh.map((r) => r.agentId))].map((id) => ({ id, name: names.get(id) ?? id }));
  throw new Forbidden(
    'beyond_own_permissions',
    `you cannot ${what}: that would give access to agent ${agents.map((a) => `"${a.name}"`).join(', ')}, and only admins may grant access to an agent`,
    { details: { agents } },
  );
}

/**
 * May the principal add people to a group (`members`) or make people its managers
 * (`managers`)? Both hand on everything the group and its ancestors carry, so user managers may
 * do it only where that is nothing they could not grant directly. A group's own managers add
 * members to it (the access it carries is theirs to share, as an admin made them its managers)
 * and never make anyone a manager.
 */
export async function assertMayGrantMembership(
  trx: Knex,
  catalogue: Area[],
  p: Principal,
  group: LocalGroup,
  grant: { members: boolean; managers: boolean },
): Promise<void> {
  if (mayGrantAgentAccess(p) || (!grant.members && !grant.managers)) return;
  const userManager = canManageUsers(p, catalogue);
  if (grant.managers && !userManager) {
    throw new Forbidden(
      'group_manager_limit',
      "you cannot make anyone a manager: a group's managers add and remove members; roles are for admins and user managers",
    );
  }
  const groupManager =
    p.kind === 'user' &&
    group.status === 'active' &&
    (await effectiveRole(trx, group.tenantId, group.id, p.user.id)) === 'manager';
  if (grant.members && !groupManager && !userManager)
    throw new Forbidden(
      'not_allowed',
      `only admins, user managers and managers of group "${group.name}" may change its members`,
    );
  if (!grant.managers && groupManager) return;
  const what = grant.managers
    ? `make anyone a manager of group "${group.name}"`
    : `add members to group "${group.name}"`;
  await assertMayPassOn(trx, group.tenantId, p, await groupChain(trx, group.tenantId, group.id), [], what);
}

/**
 * May the principal create a group under `parentId`, or make this change to a group? Placing a
 * group under a parent gives its members (and those of its descendants) what the new ancestors
 * carry; reactivating an archived group gives back everything its chain carries.
 */
export async function assertMayShapeGroup(
  trx: Knex,
  p: Principal,
  tenantId: string,
  group: LocalGroup | null,
  change: GroupChange,
): Promise<void> {
  const moves = change.parentId !== undefined && change.parentId !== (group?.parentId ?? null);
  const reactivates = group?.status === 'archived' && change.status === 'active';
  if (!moves && !reactivates) return;
  const parentId = change.parentId !== undefined ? change.parentId : (group?.parentId ?? null);
  const after = [...(group ? [group.id] : []), ...(parentId ? await groupChain(trx, tenantId, parentId) : [])];
  const before = group && !reactivates ? await groupChain(trx, tenantId, group.id) : [];
  const what = !group
    ? 'create a group there'
    : reactivates
      ? `reactivate group "${group.name}"`
      : `move group "${group.name}" there`;
  await assertMayPassOn(trx, tenantId, p, after, before, what);
}
