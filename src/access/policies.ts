import type { Area } from './catalogue.js';
import { effectivePermissions, type EffectiveTree } from './effective.js';
import type { AreaSettings } from './levels.js';
import { canManageUsers, isAdmin, requireUserManager, type Principal } from './principal.js';
import type { RoleTemplate } from './templates.js';
import type { User } from '../directory/users.js';
import { Forbidden } from '../errors.js';

/**
 * Who may change what (seed 003): admins change anything; members holding manage on the
 * user-management area change members, and never give anyone more than they hold themselves.
 */

/** What a member with these settings would hold once active: the escalation check compares it. */
export function wouldHold(catalogue: Area[], own: AreaSettings, template: Pick<RoleTemplate, 'id' | 'name' | 'areas'> | null): EffectiveTree {
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
      throw new Forbidden('beyond_own_permissions', `you cannot grant ${extra.join(', ')} on ${key}: you hold ${p.effective[key]?.level ?? 'none'} there yourself`, {
        details: { area: key },
      });
    }
  }
}

/** May the principal change this user at all? Members never change admins. */
export function assertMayChangeUser(p: Principal, catalogue: Area[], target: User, what: string): void {
  requireUserManager(p, catalogue, what);
  if (!isAdmin(p) && target.role === 'admin') throw new Forbidden('admin_required', `only admins may ${what} of an admin`);
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
