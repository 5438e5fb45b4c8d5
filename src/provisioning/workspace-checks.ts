import type { Knex } from 'knex';
import { currentGroups, type LocalGroup } from '../access/local-groups.js';
import { InvalidInput, Unprocessable } from '../errors.js';

/** Input checks the workspace commands share. */

export const quoted = (xs: string[]) => xs.map((x) => `"${x}"`).join(', ');

export function checkedName(name: string, path: string): string {
  if (!name.trim())
    throw new InvalidInput('invalid_name', 'a name must not be blank', {
      fields: [{ path, message: 'must not be blank' }],
    });
  return name.trim();
}

/** Groups a body refers to: each must exist and be active (an archived group confers nothing). */
export async function activeGroups(
  trx: Knex,
  tenantId: string,
  ids: string[],
  path: string,
): Promise<Map<string, LocalGroup>> {
  const found = await currentGroups(trx, tenantId, ids);
  const unknown = ids.filter((id) => !found.has(id));
  if (unknown.length) {
    throw new Unprocessable('unknown_group', `no group with id ${quoted(unknown)}`, {
      fields: [{ path, message: `names no group of this tenant: ${unknown.join(', ')}` }],
      details: { unknownGroupIds: unknown },
    });
  }
  const archived = ids.filter((id) => found.get(id)!.status === 'archived');
  if (archived.length) {
    throw new Unprocessable(
      'group_archived',
      `group ${quoted(archived.map((id) => found.get(id)!.name))} is archived; an archived group's grants and data-source rights do not apply`,
      {
        fields: [{ path, message: `names an archived group: ${archived.join(', ')}` }],
        details: { archivedGroupIds: archived },
      },
    );
  }
  return found;
}
