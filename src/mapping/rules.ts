/**
 * Mapping rules: which IdP groups a rule matches, and what it gives their members.
 */

/**
 * scim: groups SCIM pushed; connection: claim groups of the connection `connectionId`;
 * saml/oidc: claim groups of every connection of that protocol; any: all of them.
 */
export type MatchSource = 'scim' | 'saml' | 'oidc' | 'any' | 'connection';
export type MatchField = 'id' | 'externalId' | 'displayName';
export type MatchOperator = 'equals' | 'prefix' | 'glob';

export interface RuleMatch {
  source: MatchSource;
  field: MatchField;
  operator: MatchOperator;
  value: string;
  /** With source `connection`: the SSO connection whose claim groups match. */
  connectionId?: string;
}

export interface GroupAction {
  groupId: string;
  role: 'member' | 'manager';
}

export interface AgentAction {
  agentId: string;
  permission: 'view_use' | 'edit';
  startDate?: string | null;
  endDate?: string | null;
  timeZone?: string | null;
}

export interface RuleActions {
  groups: GroupAction[];
  agents: AgentAction[];
}

export interface MappingRule {
  id: string;
  name: string;
  description: string | null;
  enabled: boolean;
  position: number;
  match: RuleMatch;
  actions: RuleActions;
  version: number;
  createdAt: number;
  updatedAt: number;
}

/** The IdP group facts a rule can match on. */
export interface MatchableGroup {
  id: string;
  source: 'scim' | 'saml' | 'oidc';
  /** The connection that asserted a claim group; '' for SCIM groups. */
  connectionId?: string;
  externalId: string | null;
  displayName: string;
}

function globRegExp(pattern: string, flags: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, flags);
}

/** A compiled matcher: display names compare case-insensitively, ids and external ids exactly. */
export function matcher(m: RuleMatch): (g: MatchableGroup) => boolean {
  const fold = m.field === 'displayName';
  const norm = (s: string) => (fold ? s.normalize('NFC').toLowerCase() : s);
  const want = norm(m.value);
  const test =
    m.operator === 'equals'
      ? (v: string) => norm(v) === want
      : m.operator === 'prefix'
        ? (v: string) => norm(v).startsWith(want)
        : ((re: RegExp) => (v: string) => re.test(norm(v)))(globRegExp(want, 's'));
  return (g) => {
    if (m.source === 'connection' ? g.connectionId !== m.connectionId : m.source !== 'any' && m.source !== g.source) return false;
    const v = m.field === 'id' ? g.id : m.field === 'externalId' ? g.externalId : g.displayName;
    return v !== null && test(v);
  };
}
