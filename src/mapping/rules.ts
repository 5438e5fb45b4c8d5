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

/**
 * A glob (`*` any run, `?` any one UTF-16 unit, everything else literal) as a matcher that runs in
 * O(pattern × text) at worst: the two-pointer walk backtracks only to the last `*`, never
 * combinatorially, so a pattern of many `*` cannot stall the process the way a regex would.
 */
export function globMatcher(pattern: string): (text: string) => boolean {
  const p = pattern.replace(/\*{2,}/g, '*');
  return (text) => {
    let i = 0;
    let j = 0;
    let star = -1;
    let resume = 0;
    while (j < text.length) {
      if (i < p.length && p[i] === '*') {
        star = i++;
        resume = j;
      } else if (i < p.length && (p[i] === '?' || p[i] === text[j])) {
        i++;
        j++;
      } else if (star >= 0) {
        i = star + 1;
        j = ++resume;
      } else return false;
    }
    while (i < p.length && p[i] === '*') i++;
    return i === p.length;
  };
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
        : (
            (glob: (t: string) => boolean) => (v: string) =>
              glob(norm(v))
          )(globMatcher(want));
  return (g) => {
    if (m.source === 'connection' ? g.connectionId !== m.connectionId : m.source !== 'any' && m.source !== g.source)
      return false;
    // A claim value is also its group's externalId, but an `any` rule on externalId was written
    // for ids a SCIM client pushed (Entra object ids): an IdP's claim of that text is not that group.
    const v =
      m.field === 'id'
        ? g.id
        : m.field === 'externalId'
          ? m.source === 'any' && g.source !== 'scim'
            ? null
            : g.externalId
          : g.displayName;
    return v !== null && test(v);
  };
}
