import type { Knex } from 'knex';
import { isValidDate } from '../access/grant-window.js';
import { resolveTimeZone } from '../access/grants.js';
import { requireAdmin, type Principal } from '../access/principal.js';
import { recordEvent } from '../audit/record.js';
import type { Ctx } from '../context.js';
import { eachChunk, inChunks } from '../db/batch.js';
import type { Db } from '../db/knex.js';
import type { MemberDelta } from '../directory/groups.js';
import { Unprocessable, type FieldError } from '../errors.js';
import { diffSize, syncUsers, usersUnderIdpGroups, type SyncDiff } from '../mapping/engine.js';
import { matcher, type MappingRule } from '../mapping/rules.js';
import { connectionMatchErrors } from '../sso/connections.js';
import { deleteRuleRow, insertRule, listRules, lockRule, requireRule, touchSync, writeRule, type RuleInput } from '../mapping/store.js';

/** Users per transaction when a rule change or a reconcile sweeps many users. */
export const SWEEP_CHUNK = 1000;

async function tenantHasRules(trx: Knex, tenantId: string): Promise<boolean> {
  return Boolean(await trx('mapping_rules').where({ tenant_id: tenantId }).first('id'));
}

/**
 * Applies the rules to users whose IdP groups just changed, in the caller's transaction. A
 * tenant without rules pays one indexed lookup.
 */
export async function syncAfterDirectoryChange(trx: Knex, ctx: Ctx, userIds: string[]): Promise<void> {
  if (!userIds.length || !(await tenantHasRules(trx, ctx.tenantId))) return;
  await syncUsers(trx, ctx, userIds, { rules: await listRules(trx, ctx.tenantId, { enabledOnly: true }) });
  await touchSync(trx, ctx.tenantId, ctx.now.getTime());
}

/** The users a SCIM group change reaches: changed members, and everyone under a changed group. */
export async function usersAffectedByGroupChange(trx: Knex, tenantId: string, groupId: string, delta: MemberDelta, renamed: boolean): Promise<string[]> {
  if (renamed) return usersUnderIdpGroups(trx, tenantId, [groupId]);
  const users = new Set<string>(delta.added.filter((m) => m.type === 'User').map((m) => m.id));
  const nested = delta.added.filter((m) => m.type === 'Group').map((m) => m.id);
  if (delta.removed.length) {
    const groups = new Set((await inChunks(trx, delta.removed, (part) => trx('idp_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id'))).map((r) => String(r.id)));
    for (const id of delta.removed) {
      if (groups.has(id)) nested.push(id);
      else users.add(id);
    }
  }
  for (const u of nested.length ? await usersUnderIdpGroups(trx, tenantId, nested) : []) users.add(u);
  return [...users];
}

async function validateRule(trx: Knex, tenantId: string, input: RuleInput): Promise<void> {
  const fields: FieldError[] = [];
  const groupIds = input.actions.groups.map((g) => g.groupId);
  const agentIds = input.actions.agents.map((a) => a.agentId);
  const groups = new Map(
    (groupIds.length ? await trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', groupIds).select('id', 'status') : []).map((g: Record<string, unknown>) => [String(g.id), String(g.status)]),
  );
  const agents = new Map(
    (agentIds.length ? await trx('agents').where({ tenant_id: tenantId }).whereIn('id', agentIds).select('id', 'access_type') : []).map((a: Record<string, unknown>) => [String(a.id), String(a.access_type)]),
  );
  input.actions.groups.forEach((g, i) => {
    if (!groups.has(g.groupId)) fields.push({ path: `body.actions.groups.${i}.groupId`, message: `no local group "${g.groupId}"` });
    else if (groups.get(g.groupId) !== 'active') fields.push({ path: `body.actions.groups.${i}.groupId`, message: 'the group is archived' });
  });
  input.actions.agents.forEach((a, i) => {
    const at = `body.actions.agents.${i}`;
    if (!agents.has(a.agentId)) fields.push({ path: `${at}.agentId`, message: `no agent "${a.agentId}"` });
    else if (agents.get(a.agentId) === 'private') fields.push({ path: `${at}.agentId`, message: 'the agent is private: only its creator and admins may use it' });
    if (a.startDate && !isValidDate(a.startDate)) fields.push({ path: `${at}.startDate`, message: 'must be a date YYYY-MM-DD' });
    if (a.endDate && !isValidDate(a.endDate)) fields.push({ path: `${at}.endDate`, message: 'must be a date YYYY-MM-DD' });
    if (a.startDate && a.endDate && a.startDate > a.endDate) fields.push({ path: `${at}.endDate`, message: 'must not be before startDate' });
    if (a.timeZone) {
      const zone = resolveTimeZone(a.timeZone);
      if (!zone) fields.push({ path: `${at}.timeZone`, message: `"${a.timeZone}" is not an IANA time zone` });
      // Stored canonical, as grants made through the API are.
      else a.timeZone = zone;
    }
  });
  fields.push(...(await connectionMatchErrors(trx, tenantId, input.match)));
  if (input.match.operator === 'glob' && input.match.value.length > 200) fields.push({ path: 'body.match.value', message: 'pattern too long' });
  if (fields.length) throw new Unprocessable('invalid_rule', `the rule refers to things it cannot use: ${fields.map((f) => f.message).join('; ')}`, { fields });
}

/** IdP groups the rule matches now. */
export async function matchedGroups(trx: Knex, tenantId: string, rule: Pick<MappingRule, 'match'>) {
  const test = matcher(rule.match);
  const rows = await trx('idp_groups').where({ tenant_id: tenantId }).select('id', 'source', 'connection_id', 'external_id', 'display_name');
  return rows
    .map((r: Record<string, unknown>) => ({ id: String(r.id), source: r.source as 'scim', connectionId: String(r.connection_id), externalId: (r.external_id as string | null) ?? null, displayName: String(r.display_name) }))
    .filter(test);
}

/**
 * Recomputes one rule's output for everyone it reached before or reaches now, a chunk of users
 * per transaction, so concurrent SCIM requests wait for one chunk at most.
 */
async function sweepRule(db: Db, ctx: Ctx, ruleId: string, before: MappingRule | null, after: MappingRule | null): Promise<SyncDiff> {
  const total: SyncDiff = { membershipsAdded: [], membershipsRemoved: [], grantsAdded: [], grantsRemoved: [] };
  const users = new Set<string>();
  for (const r of [before, after]) {
    if (r) {
      const groups = await matchedGroups(db.knex, ctx.tenantId, r);
      for (const u of await usersUnderIdpGroups(db.knex, ctx.tenantId, groups.map((g) => g.id))) users.add(u);
    }
  }
  // Users holding rows of the rule that no longer match are reached too.
  for (const r of await db.knex('group_members').where({ tenant_id: ctx.tenantId, rule_id: ruleId }).distinct('user_id')) users.add(String(r.user_id));
  for (const r of await db.knex('agent_grants').where({ tenant_id: ctx.tenantId, rule_id: ruleId, subject_type: 'user' }).distinct('subject_id')) users.add(String(r.subject_id));
  const all = [...users].sort();
  for (let i = 0; i < all.length; i += SWEEP_CHUNK) {
    // better-sqlite3 is synchronous: without a turn of the event loop between chunks, other
    // requests would wait for the whole sweep instead of one chunk.
    if (i) await new Promise((resolve) => setImmediate(resolve));
    const diff = await db.tx((trx) => syncUsers(trx, ctx, all.slice(i, i + SWEEP_CHUNK), { rules: after ? [after] : [], ruleIds: [ruleId] }));
    total.membershipsAdded.push(...diff.membershipsAdded);
    total.membershipsRemoved.push(...diff.membershipsRemoved);
    total.grantsAdded.push(...diff.grantsAdded);
    total.grantsRemoved.push(...diff.grantsRemoved);
  }
  return total;
}

function entity(r: MappingRule) {
  return { type: 'mapping_rule', id: r.id, name: r.name };
}

function snapshot(r: MappingRule) {
  return { name: r.name, description: r.description, enabled: r.enabled, position: r.position, match: r.match, actions: r.actions };
}

export interface RuleChange {
  rule: MappingRule;
  applied: { membershipsAdded: number; membershipsRemoved: number; grantsAdded: number; grantsRemoved: number };
}

function counts(d: SyncDiff): RuleChange['applied'] {
  return { membershipsAdded: d.membershipsAdded.length, membershipsRemoved: d.membershipsRemoved.length, grantsAdded: d.grantsAdded.length, grantsRemoved: d.grantsRemoved.length };
}

/** Creating a rule applies it at once to existing IdP groups. */
export async function createRule(db: Db, ctx: Ctx, p: Principal, input: RuleInput): Promise<RuleChange> {
  requireAdmin(p, 'manage mapping rules');
  const rule = await db.tx(async (trx) => {
    await validateRule(trx, ctx.tenantId, input);
    const r = await insertRule(trx, ctx.tenantId, input, ctx.now.getTime());
    await recordEvent(trx, ctx, { event: 'mapping_rule.created', entity: entity(r), before: null, after: snapshot(r) });
    return r;
  });
  return { rule, applied: counts(await sweepRule(db, ctx, rule.id, null, rule)) };
}

export async function updateRule(db: Db, ctx: Ctx, p: Principal, id: string, patch: Partial<RuleInput>): Promise<RuleChange> {
  requireAdmin(p, 'manage mapping rules');
  const { before, after } = await db.tx(async (trx) => {
    const locked = await lockRule(trx, ctx.tenantId, id, ctx.now.getTime());
    const input: RuleInput = {
      name: patch.name ?? locked.name,
      description: patch.description === undefined ? locked.description : patch.description,
      enabled: patch.enabled ?? locked.enabled,
      position: patch.position ?? locked.position,
      match: patch.match ?? locked.match,
      actions: patch.actions ?? locked.actions,
    };
    await validateRule(trx, ctx.tenantId, input);
    const r = await writeRule(trx, ctx.tenantId, locked, input);
    const event = locked.enabled !== r.enabled ? (r.enabled ? 'mapping_rule.enabled' : 'mapping_rule.disabled') : 'mapping_rule.updated';
    await recordEvent(trx, ctx, { event, entity: entity(r), before: snapshot(locked), after: snapshot(r) });
    return { before: locked, after: r };
  });
  return { rule: after, applied: counts(await sweepRule(db, ctx, id, before, after)) };
}

/** Deleting a rule revokes exactly what it derived; what admins or other rules gave stays. */
export async function deleteRule(db: Db, ctx: Ctx, p: Principal, id: string): Promise<RuleChange['applied']> {
  requireAdmin(p, 'manage mapping rules');
  const before = await db.tx(async (trx) => {
    const locked = await lockRule(trx, ctx.tenantId, id, ctx.now.getTime());
    await deleteRuleRow(trx, ctx.tenantId, id);
    await recordEvent(trx, ctx, { event: 'mapping_rule.deleted', entity: entity(locked), before: snapshot(locked), after: null });
    return locked;
  });
  return counts(await sweepRule(db, ctx, id, { ...before, enabled: false }, null));
}

export interface PreviewChange {
  userId: string;
  gains: string[];
  loses: string[];
}

/**
 * What a rule (new, or an edit of `ruleId`) would change, computed by the engine in a
 * transaction that writes nothing.
 */
export async function previewRule(db: Db, ctx: Ctx, p: Principal, input: RuleInput, ruleId?: string) {
  requireAdmin(p, 'manage mapping rules');
  return db.tx(async (trx) => {
    await validateRule(trx, ctx.tenantId, input);
    const existing = ruleId ? await requireRule(trx, ctx.tenantId, ruleId) : null;
    const candidate: MappingRule = {
      id: existing?.id ?? 'preview',
      name: input.name,
      description: input.description ?? null,
      enabled: input.enabled,
      position: input.position ?? existing?.position ?? 0,
      match: input.match,
      actions: input.actions,
      version: existing?.version ?? 0,
      createdAt: existing?.createdAt ?? 0,
      updatedAt: existing?.updatedAt ?? 0,
    };
    const groups = await matchedGroups(trx, ctx.tenantId, candidate);
    const users = new Set(await usersUnderIdpGroups(trx, ctx.tenantId, groups.map((g) => g.id)));
    if (existing) {
      for (const r of await trx('group_members').where({ tenant_id: ctx.tenantId, rule_id: existing.id }).distinct('user_id')) users.add(String(r.user_id));
      for (const r of await trx('agent_grants').where({ tenant_id: ctx.tenantId, rule_id: existing.id, subject_type: 'user' }).distinct('subject_id')) users.add(String(r.subject_id));
    }
    const diff = await syncUsers(trx, ctx, [...users], { rules: [candidate], ruleIds: [candidate.id], dryRun: true });
    const names = await describeTargets(trx, ctx.tenantId, diff);
    const byUser = new Map<string, PreviewChange>();
    const entry = (u: string) => byUser.get(u) ?? (byUser.set(u, { userId: u, gains: [], loses: [] }).get(u) as PreviewChange);
    for (const m of diff.membershipsAdded) entry(m.userId).gains.push(`${m.role} of group ${names.get(m.groupId) ?? m.groupId}`);
    for (const m of diff.membershipsRemoved) entry(m.userId).loses.push(`${m.role} of group ${names.get(m.groupId) ?? m.groupId}`);
    for (const g of diff.grantsAdded) entry(g.userId).gains.push(`${g.permission} on agent ${names.get(g.agentId) ?? g.agentId}`);
    for (const g of diff.grantsRemoved) entry(g.userId).loses.push(`${g.permission} on agent ${names.get(g.agentId) ?? g.agentId}`);
    // A membership that only moves between IdP groups of the same rule is not a change to the user.
    for (const c of byUser.values()) {
      const both = c.gains.filter((x) => c.loses.includes(x));
      c.gains = [...new Set(c.gains.filter((x) => !both.includes(x)))];
      c.loses = [...new Set(c.loses.filter((x) => !both.includes(x)))];
    }
    return {
      matchedGroups: groups.map((g) => ({ id: g.id, displayName: g.displayName, externalId: g.externalId, source: g.source })),
      changes: [...byUser.values()].filter((c) => c.gains.length || c.loses.length).sort((a, b) => (a.userId < b.userId ? -1 : 1)),
    };
  });
}

async function describeTargets(trx: Knex, tenantId: string, diff: SyncDiff): Promise<Map<string, string>> {
  const groupIds = [...new Set([...diff.membershipsAdded, ...diff.membershipsRemoved].map((m) => m.groupId))];
  const agentIds = [...new Set([...diff.grantsAdded, ...diff.grantsRemoved].map((g) => g.agentId))];
  const out = new Map<string, string>();
  for (const g of await inChunks(trx, groupIds, (part) => trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'))) out.set(String(g.id), String(g.name));
  for (const a of await inChunks(trx, agentIds, (part) => trx('agents').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'))) out.set(String(a.id), String(a.name));
  return out;
}

/**
 * Recomputes every user's derived rows from scratch and reports each difference it fixed;
 * a healthy tenant has none.
 */
export async function reconcile(db: Db, ctx: Ctx, p: Principal): Promise<{ fixed: number; diff: SyncDiff }> {
  requireAdmin(p, 'reconcile mapping rules');
  const rules = await listRules(db.knex, ctx.tenantId, { enabledOnly: true });
  const total: SyncDiff = { membershipsAdded: [], membershipsRemoved: [], grantsAdded: [], grantsRemoved: [] };
  let after = '';
  for (;;) {
    const ids = (await db.knex('users').where({ tenant_id: ctx.tenantId }).andWhere('id', '>', after).orderBy('id').limit(SWEEP_CHUNK).select('id')).map((r) => String(r.id));
    if (!ids.length) break;
    if (after) await new Promise((resolve) => setImmediate(resolve));
    after = ids[ids.length - 1]!;
    const d = await db.tx((trx) => syncUsers(trx, ctx, ids, { rules }));
    total.membershipsAdded.push(...d.membershipsAdded);
    total.membershipsRemoved.push(...d.membershipsRemoved);
    total.grantsAdded.push(...d.grantsAdded);
    total.grantsRemoved.push(...d.grantsRemoved);
  }
  // Rows of deleted users' grants or of rules that no longer exist are drift as well.
  const orphans = await db.knex('agent_grants as g')
    .leftJoin('mapping_rules as r', function () {
      this.on('r.tenant_id', '=', 'g.tenant_id').andOn('r.id', '=', 'g.rule_id');
    })
    .where('g.tenant_id', ctx.tenantId)
    .whereNot('g.rule_id', '')
    .whereNull('r.id')
    .select('g.id');
  const fixed = diffSize(total) + orphans.length;
  await db.tx(async (trx) => {
    await eachChunk(
      trx,
      orphans.map((o) => String(o.id)),
      (part) => trx('agent_grants').where({ tenant_id: ctx.tenantId }).whereIn('id', part).delete(),
    );
    await touchSync(trx, ctx.tenantId, ctx.now.getTime(), { fixed });
    await recordEvent(trx, ctx, { event: 'mapping.reconciled', entity: { type: 'tenant', id: ctx.tenantId }, before: null, after: { fixed } });
  });
  return { fixed, diff: total };
}
