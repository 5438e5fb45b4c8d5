import type { DataSource } from '../access/data-sources.js';
import { isManual, type Grant } from '../access/grants.js';
import type { LocalGroup } from '../access/local-groups.js';

/** How the workspace commands name their entities and show grants and data sources in the audit log (seed 004). */

export const groupEntity = (g: LocalGroup) => ({ type: 'group', id: g.id, name: g.name });
export const agentEntity = (a: { id: string; name: string }) => ({ type: 'agent', id: a.id, name: a.name });

/** A grant as seed 004's log entry shows it: the agent and the subject by id and by name. */
export function grantAudit(g: Grant, agentName: string, subjectName: string | null) {
  return {
    grantId: g.id,
    agentId: g.agentId,
    agentName,
    ...(g.subjectType === 'group'
      ? { groupId: g.subjectId, groupName: subjectName }
      : { userId: g.subjectId, email: subjectName }),
    permission: g.permission,
    startDate: g.startDate,
    endDate: g.endDate,
    timeZone: g.timeZone,
    ...(isManual(g) ? {} : { ruleId: g.ruleId, idpGroupId: g.idpGroupId }),
  };
}

export function sourceAudit(s: DataSource, names: Map<string, string>) {
  return {
    id: s.id,
    name: s.name,
    access: s.access,
    groups: s.groupIds.map((id) => ({ id, name: names.get(id) ?? null })),
  };
}
