import type { Knex } from 'knex';
import type { Area } from './catalogue.js';
import { effectivePermissions, type EffectiveTree } from './effective.js';
import type { AreaSettings } from './levels.js';
import { getTemplate, type RoleTemplate } from './templates.js';
import { getOwnSettings } from './user-settings.js';
import { getUser, type User } from '../directory/users.js';

/** Everything a user's permissions are computed from, read fresh: nothing is cached. */
export interface Subject {
  user: User;
  own: AreaSettings;
  template: RoleTemplate | null;
}

export async function loadSubject(db: Knex, tenantId: string, userId: string): Promise<Subject | undefined> {
  const user = await getUser(db, tenantId, userId);
  if (!user) return undefined;
  const [own, template] = await Promise.all([
    getOwnSettings(db, tenantId, userId),
    user.templateId ? getTemplate(db, tenantId, user.templateId) : Promise.resolve(undefined),
  ]);
  return { user, own, template: template ?? null };
}

export function effectiveOf(catalogue: Area[], s: Subject): EffectiveTree {
  return effectivePermissions(catalogue, {
    role: s.user.role,
    status: s.user.status,
    own: s.own,
    template: s.template ? { id: s.template.id, name: s.template.name, areas: s.template.areas } : null,
  });
}
