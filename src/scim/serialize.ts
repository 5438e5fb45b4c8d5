import type { IdpGroup, MemberView } from '../directory/groups.js';
import type { User } from '../directory/users.js';
import { etagOf } from './etag.js';
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA } from '../directory/model/definitions.js';

export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

function meta(resourceType: string, location: string, createdAt: number, updatedAt: number, version: number) {
  return {
    resourceType,
    created: new Date(createdAt).toISOString(),
    lastModified: new Date(updatedAt).toISOString(),
    location,
    version: etagOf(version),
  };
}

export function userLocation(base: string, id: string): string {
  return `${base}/scim/v2/Users/${id}`;
}

export function groupLocation(base: string, id: string): string {
  return `${base}/scim/v2/Groups/${id}`;
}

/** A user as SCIM shows it. `groups` is omitted when not loaded (not requested). */
export function userResource(
  u: User,
  base: string,
  groups?: { id: string; displayName: string }[],
): Record<string, unknown> {
  const { userName: _u, externalId: _e, active: _a, ...rest } = u.doc;
  return {
    schemas: u.doc[ENTERPRISE_USER_SCHEMA] ? [USER_SCHEMA, ENTERPRISE_USER_SCHEMA] : [USER_SCHEMA],
    id: u.id,
    ...(u.externalId !== null ? { externalId: u.externalId } : {}),
    userName: u.userName,
    active: u.active,
    ...rest,
    ...(groups?.length
      ? {
          groups: groups.map((g) => ({
            value: g.id,
            display: g.displayName,
            $ref: groupLocation(base, g.id),
            type: 'direct',
          })),
        }
      : {}),
    meta: meta('User', userLocation(base, u.id), u.createdAt, u.updatedAt, u.version),
  };
}

/** A group as SCIM shows it. `members` is omitted when not loaded (excluded or not requested). */
export function groupResource(g: IdpGroup, base: string, members?: MemberView[]): Record<string, unknown> {
  const { displayName: _d, externalId: _e, members: _m, ...rest } = g.doc;
  return {
    schemas: [GROUP_SCHEMA],
    id: g.id,
    ...(g.externalId !== null ? { externalId: g.externalId } : {}),
    displayName: g.displayName,
    ...rest,
    ...(members
      ? {
          members: members.map((m) => ({
            value: m.value,
            $ref: m.type === 'User' ? userLocation(base, m.value) : groupLocation(base, m.value),
            type: m.type,
            ...(m.display ? { display: m.display } : {}),
          })),
        }
      : {}),
    meta: meta('Group', groupLocation(base, g.id), g.createdAt, g.updatedAt, g.version),
  };
}
