import type { Area } from './catalogue.js';
import type { EffectiveTree } from './effective.js';
import type { User } from '../directory/users.js';
import { Forbidden } from '../errors.js';

/**
 * Who acts on the management API. A tenant admin key is the break-glass credential and acts
 * with admin authority; a user (through a key they own or a sign-in session) acts with their
 * own effective permissions as of this request.
 */
export type Principal =
  | { kind: 'admin_key'; tokenId: string; name: string }
  | { kind: 'user'; user: User; effective: EffectiveTree };

export function isAdmin(p: Principal): boolean {
  return p.kind === 'admin_key' || p.user.role === 'admin';
}

/**
 * The catalogue area whose `manage` lets a member manage users (seed 003's Users permission):
 * Account › Users in seed 002's catalogue, a top-level Users area in seed 003's.
 */
export function userAdminArea(catalogue: Area[]): string | null {
  const keys = new Set<string>();
  const walk = (as: Area[]) => as.forEach((a) => (keys.add(a.key), walk(a.children)));
  walk(catalogue);
  return keys.has('account.users') ? 'account.users' : keys.has('users') ? 'users' : null;
}

/** Admins, and members holding manage on the user-management area. */
export function canManageUsers(p: Principal, catalogue: Area[]): boolean {
  if (isAdmin(p)) return true;
  const area = userAdminArea(catalogue);
  return area !== null && p.kind === 'user' && (p.effective[area]?.actions.includes('manage') ?? false);
}

export function requireAdmin(p: Principal, what: string): void {
  if (!isAdmin(p)) throw new Forbidden('admin_required', `only admins may ${what}`);
}

export function requireUserManager(p: Principal, catalogue: Area[], what: string): void {
  if (!canManageUsers(p, catalogue)) {
    const area = userAdminArea(catalogue);
    throw new Forbidden('not_allowed', `only admins${area ? ` and members with manage on ${area}` : ''} may ${what}`);
  }
}
