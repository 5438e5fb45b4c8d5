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
import { emptyDiff, syncUsers, usersUnderIdpGroups, type SyncDiff } from '../mapping/engine.js';
import { lockMapping } from '../mapping/lock.js';
import { matcher, type MappingRule } from '../mapping/rules.js';
import { connectionMatchErrors } from '../connections/connections.js';
import {
  deleteRuleRow,
  getRule,
  insertRule,
  listRules,
  requireRule,
  touchSync,
  writeRule,
  type RuleInput,
} from '../mapping/store.js';

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
export async function usersAffectedByGroupChange(
  trx: Knex,
  tenantId: string,
  groupId: string,
  delta: MemberDelta,
  renamed: boolean,
): Promise<string[]> {
  if (renamed) return usersUnderIdpGroups(trx, tenantId, [groupId]);
  const users = new Set<string>(delta.added.filter((m) => m.type === 'User').map((m) => m.id));
  const nested = delta.added.filter((m) => m.type === 'Group').map((m) => m.id);
  if (delta.removed.length) {
    const groups = new Set(
      (
        await inChunks(trx, delta.removed, (part) =>
          trx('idp_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id'),
        )
      ).map((r) => String(r.id)),
    );
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
    (groupIds.length
      ? await trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', groupIds).select('id', 'status')
      : []
    ).map((g: Record<string, unknown>) => [String(g.id), String(g.status)]),
  );
  const agents = new Map(
    (agentIds.length
      ? await trx('agents').where({ tenant_id: tenantId }).whereIn('id', agentIds).select('id', 'access_type')
      : []
    ).map((a: Record<string, unknown>) => [String(a.id), String(a.access_type)]),
  );
  input.actions.groups.forEach((g, i) => {
    if (!groups.has(g.groupId))
      fields.push({ path: `body.actions.groups.${i}.groupId`, message: `no local group "${g.groupId}"` });
    else if (groups.get(g.groupId) !== 'active')
      fields.push({ path: `body.actions.groups.${i}.groupId`, message: 'the group is archived' });
  });
  input.actions.agents.forEach((a, i) => {
    const at = `body.actions.agents.${i}`;
    if (!agents.has(a.agentId)) fields.push({ path: `${at}.agentId`, message: `no agent "${a.agentId}"` });
    else if (agents.get(a.agentId) === 'private')
      fields.push({ path: `${at}.agentId`, message: 'the agent is private: only its creator and admins may use it' });
    if (a.startDate && !isValidDate(a.startDate))
      fields.push({ path: `${at}.startDate`, message: 'must be a date YYYY-MM-DD' });
    if (a.endDate && !isValidDate(a.endDate))
      fields.push({ path: `${at}.endDate`, message: 'must be a date YYYY-MM-DD' });
    if (a.startDate && a.endDate && a.startDate > a.endDate)
      fields.push({ path: `${at}.endDate`, message: 'must not be before startDate' });
    if (a.timeZone) {
      const zone = resolveTimeZone(a.timeZone);
      if (!zone) fields.push({ path: `${at}.timeZone`, message: `"${a.timeZone}" is not an IANA time zone` });
      // Stored canonical, as grants made through the API are.
      else a.timeZone = zone;
    }
  });
  fields.push(...(await connectionMatchErrors(trx, tenantId, input.match, input.enabled)));
  if (input.match.operator === 'glob' && input.match.value.length > 200)
    fields.push({ path: 'body.match.value', message: 'pattern too long' });
  if (fields.length)
    throw new Unprocessable(
      'invalid_rule',
      `the rule refers to things it cannot use: ${fields.map((f) => f.message).join('; ')}`,
      { fields },
    );
}

/** IdP groups the rule matches now. */
export async function matchedGroups(trx: Knex, tenantId: string, rule: Pick<MappingRule, 'match'>) {
  const test = matcher(rule.match);
  const rows = await trx('idp_groups')
    .where({ tenant_id: tenantId })
    .select('id', 'source', 'connection_id', 'external_id', 'display_name');
  return rows
    .map((r: Record<string, unknown>) => ({
      id: String(r.id),
      source: r.source as 'scim',
      connectionId: String(r.connection_id),
      externalId: (r.external_id as string | null) ?? null,
      displayName: String(r.display_name),
    }))
    .filter(test);
}

/** What a rule sweep works towards: the rule at a version, or its deletion. */
export interface SweepTarget {
  ruleId: string;
  version: number;
  deleted: boolean;
}

export interface ChunkResult {
  /** `superseded`: a newer version of the rule (or its deletion) owns the result now. */
  state: 'more' | 'done' | 'superseded';
  /** The last user id handled: the next chunk starts after it. */
  next: string;
  users: number;
  diff: SyncDiff;
}

async function usersAfter(trx: Knex, tenantId: string, after: string, size: number): Promise<string[]> {
  return (
    await trx('users').where({ tenant_id: tenantId }).andWhere('id', '>', after).orderBy('id').limit(size).select('id')
  ).map((r) => String(r.id));
}

/**
 * One chunk of a rule sweep, in the caller's transaction (a job chunk's): the next `size` users
 * of the tenant by id, under the exclusive mapping lock taken first. The rule is read again
 * inside the chunk: when it has moved past the target version (or was deleted meanwhile), the
 * chunk writes nothing and the sweep stops, because the newer change's sweep owns the result.
 * Rows of the rule's older versions are rewritten or moved to this version; users it no longer
 * reaches lose its rows.
 */
export async function sweepChunk(
  trx: Knex,
  ctx: Ctx,
  target: SweepTarget,
  after: string,
  size = SWEEP_CHUNK,
): Promise<ChunkResult> {
  await lockMapping(trx, ctx.tenantId, 'exclusive');
  const rule = await getRule(trx, ctx.tenantId, target.ruleId);
  if (!target.deleted && (!rule || rule.version !== target.version))
    return { state: 'superseded', next: after, users: 0, diff: emptyDiff() };
  const ids = await usersAfter(trx, ctx.tenantId, after, size);
  if (!ids.length) return { state: 'done', next: after, users: 0, diff: emptyDiff() };
  const diff = await syncUsers(trx, ctx, ids, {
    rules: rule && !target.deleted ? [rule] : [],
    ruleIds: [target.ruleId],
  });
  return { state: ids.length < size ? 'done' : 'more', next: ids[ids.length - 1]!, users: ids.length, diff };
}

function entity(r: MappingRule) {
  return { type: 'mapping_rule', id: r.id, name: r.name };
}

function snapshot(r: MappingRule) {
  return {
    name: r.name,
    description: r.description,
    enabled: r.enabled,
    position: r.position,
    match: r.match,
    actions: r.actions,
  };
}

export interface RuleChange {
  rule: MappingRule;
  /** The sweep the change needs, or null when it changed nothing a rule derives. */
  sweep: SweepTarget | null;
}

export function counts(d: SyncDiff) {
  return {
    membershipsAdded: d.membershipsAdded.length,
    membershipsRemoved: d.membershipsRemoved.length,
    grantsAdded: d.grantsAdded.length,
    grantsRemoved: d.grantsRemoved.length,
  };
}

/**
 * Rule changes take the exclusive mapping lock first: SCIM and SSO changes in flight finish
 * before, and those that follow see the new rule (src/mapping/lock.ts). The sweep the change
 * needs is returned for the caller to run (or enqueue in `trx` through `onSweep`).
 */
export async function createRule(
  db: Db,
  ctx: Ctx,
  p: Principal,
  input: RuleInput,
  onSweep?: SweepHook,
): Promise<RuleChange> {
  requireAdmin(p, 'manage mapping rules');
  return db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    await validateRule(trx, ctx.tenantId, input);
    const r = await insertRule(trx, ctx.tenantId, input, ctx.now.getTime());
    await recordEvent(trx, ctx, { event: 'mapping_rule.created', entity: entity(r), before: null, after: snapshot(r) });
    const sweep = r.enabled ? { ruleId: r.id, version: r.version, deleted: false } : null;
    if (sweep && onSweep) await onSweep(trx, sweep);
    return { rule: r, sweep };
  });
}

export async function updateRule(
  db: Db,
  ctx: Ctx,
  p: Principal,
  id: string,
  patch: Partial<RuleInput>,
  onSweep?: SweepHook,
): Promise<RuleChange> {
  requireAdmin(p, 'manage mapping rules');
  return db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    const current = await requireRule(trx, ctx.tenantId, id);
    const input: RuleInput = {
      name: patch.name ?? current.name,
      description: patch.description === undefined ? current.description : patch.description,
      enabled: patch.enabled ?? current.enabled,
      position: patch.position ?? current.position,
      match: patch.match ?? current.match,
      actions: patch.actions ?? current.actions,
    };
    await validateRule(trx, ctx.tenantId, input);
    const r = await writeRule(trx, ctx.tenantId, current, input, ctx.now.getTime());
    const event =
      current.enabled !== r.enabled
        ? r.enabled
          ? 'mapping_rule.enabled'
          : 'mapping_rule.disabled'
        : 'mapping_rule.updated';
    await recordEvent(trx, ctx, { event, entity: entity(r), before: snapshot(current), after: snapshot(r) });
    const sweep = r.version !== current.version ? { ruleId: r.id, version: r.version, deleted: false } : null;
    if (sweep && onSweep) await onSweep(trx, sweep);
    return { rule: r, sweep };
  });
}

/** Deleting a rule revokes exactly what it derived; what admins or other rules gave stays. */
export async function deleteRule(db: Db, ctx: Ctx, p: Principal, id: string, onSweep?: SweepHook): Promise<RuleChange> {
  requireAdmin(p, 'manage mapping rules');
  return db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    const current = await requireRule(trx, ctx.tenantId, id);
    await deleteRuleRow(trx, ctx.tenantId, id);
    await recordEvent(trx, ctx, {
      event: 'mapping_rule.deleted',
      entity: entity(current),
      before: snapshot(current),
      after: null,
    });
    const sweep = { ruleId: id, version: current.version, deleted: true };
    if (onSweep) await onSweep(trx, sweep);
    return { rule: current, sweep };
  });
}

/** Called inside a rule change's transaction with the sweep it needs (to enqueue it there). */
export type SweepHook = (trx: Knex.Transaction, sweep: SweepTarget) => Promise<void>;

export interface PreviewChange {
  userId: string;
  gains: string[];
  loses: string[];
}

/** Users per read-only transaction of a preview, and the per-user changes it shows. */
const PREVIEW_CHUNK = 500;
const PREVIEW_SAMPLE = 100;

/**
 * What a rule (new, or an edit of `ruleId`) would change: counts for everyone it reaches and
 * the first PREVIEW_SAMPLE users' gains and losses. Computed by the engine without writing,
 * one short transaction per chunk of users, so other requests wait for a chunk at most.
 */
export async function previewRule(db: Db, ctx: Ctx, p: Principal, input: RuleInput, ruleId?: string) {
  requireAdmin(p, 'manage mapping rules');
  const { candidate, groups, users } = await db.tx(async (trx) => {
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
      version: (existing?.version ?? 0) + 1,
      createdAt: existing?.createdAt ?? 0,
      updatedAt: existing?.updatedAt ?? 0,
    };
    const groups = await matchedGroups(trx, ctx.tenantId, candidate);
    const users = new Set(
      await usersUnderIdpGroups(
        trx,
        ctx.tenantId,
        groups.map((g) => g.id),
      ),
    );
    if (existing) {
      for (const r of await trx('group_members')
        .where({ tenant_id: ctx.tenantId, rule_id: existing.id })
        .distinct('user_id'))
        users.add(String(r.user_id));
      for (const r of await trx('agent_grants')
        .where({ tenant_id: ctx.tenantId, rule_id: existing.id, subject_type: 'user' })
        .distinct('subject_id'))
        users.add(String(r.subject_id));
    }
    return { candidate, groups, users: [...users].sort() };
  });
  const sample: PreviewChange[] = [];
  let usersChanged = 0;
  let gains = 0;
  let losses = 0;
  for (let i = 0; i < users.length; i += PREVIEW_CHUNK) {
    if (i) await new Promise((resolve) => setImmediate(resolve));
    const changes = await db.tx(async (trx) => {
      const diff = await syncUsers(trx, ctx, users.slice(i, i + PREVIEW_CHUNK), {
        rules: [candidate],
        ruleIds: [candidate.id],
        dryRun: true,
      });
      return describeChanges(trx, ctx.tenantId, diff);
    });
    for (const c of changes) {
      usersChanged++;
      gains += c.gains.length;
      losses += c.loses.length;
      if (sample.length < PREVIEW_SAMPLE) sample.push(c);
    }
  }
  return {
    matchedGroups: groups.map((g) => ({
      id: g.id,
      displayName: g.displayName,
      externalId: g.externalId,
      source: g.source,
    })),
    counts: { usersReached: users.length, usersChanged, gains, losses },
    changes: sample,
    truncated: usersChanged > sample.length,
  };
}

/** Per-user gains and losses of a dry run, in user id order. */
async function describeChanges(trx: Knex, tenantId: string, diff: SyncDiff): Promise<PreviewChange[]> {
  const names = await describeTargets(trx, tenantId, diff);
  const byUser = new Map<string, PreviewChange>();
  const entry = (u: string) =>
    byUser.get(u) ?? (byUser.set(u, { userId: u, gains: [], loses: [] }).get(u) as PreviewChange);
  for (const m of diff.membershipsAdded)
    entry(m.userId).gains.push(`${m.role} of group ${names.get(m.groupId) ?? m.groupId}`);
  for (const m of diff.membershipsRemoved)
    entry(m.userId).loses.push(`${m.role} of group ${names.get(m.groupId) ?? m.groupId}`);
  for (const g of diff.grantsAdded)
    entry(g.userId).gains.push(`${g.permission} on agent ${names.get(g.agentId) ?? g.agentId}`);
  for (const g of diff.grantsRemoved)
    entry(g.userId).loses.push(`${g.permission} on agent ${names.get(g.agentId) ?? g.agentId}`);
  // A membership that only moves between IdP groups of the same rule is not a change to the user.
  for (const c of byUser.values()) {
    const both = c.gains.filter((x) => c.loses.includes(x));
    c.gains = [...new Set(c.gains.filter((x) => !both.includes(x)))];
    c.loses = [...new Set(c.loses.filter((x) => !both.includes(x)))];
  }
  return [...byUser.values()]
    .filter((c) => c.gains.length || c.loses.length)
    .sort((a, b) => (a.userId < b.userId ? -1 : 1));
}

async function describeTargets(trx: Knex, tenantId: string, diff: SyncDiff): Promise<Map<string, string>> {
  const groupIds = [...new Set([...diff.membershipsAdded, ...diff.membershipsRemoved].map((m) => m.groupId))];
  const agentIds = [...new Set([...diff.grantsAdded, ...diff.grantsRemoved].map((g) => g.agentId))];
  const out = new Map<string, string>();
  for (const g of await inChunks(trx, groupIds, (part) =>
    trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'),
  ))
    out.set(String(g.id), String(g.name));
  for (const a of await inChunks(trx, agentIds, (part) =>
    trx('agents').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'),
  ))
    out.set(String(a.id), String(a.name));
  return out;
}

/** Differences a reconcile reports: every kind counted, the first RECONCILE_SAMPLE of each shown. */
const RECONCILE_SAMPLE = 20;

export interface DiffTally {
  counts: Record<keyof SyncDiff, number>;
  sample: SyncDiff;
}

export function emptyTally(): DiffTally {
  return {
    counts: {
      membershipsAdded: 0,
      membershipsRemoved: 0,
      grantsAdded: 0,
      grantsRemoved: 0,
      membershipsRestamped: 0,
      grantsRestamped: 0,
    },
    sample: emptyDiff(),
  };
}

export function tally(t: DiffTally, d: SyncDiff): void {
  for (const k of Object.keys(t.counts) as (keyof SyncDiff)[]) {
    t.counts[k] += d[k].length;
    const room = RECONCILE_SAMPLE - t.sample[k].length;
    if (room > 0) (t.sample[k] as unknown[]).push(...d[k].slice(0, room));
  }
}

export function tallySize(t: DiffTally): number {
  return Object.values(t.counts).reduce((a, b) => a + b, 0);
}

/**
 * One chunk of a reconcile, in the caller's transaction: the next `size` users by id
 * recomputed from scratch, under the exclusive mapping lock taken first and with the enabled
 * rules read inside the chunk, so a rule disabled or deleted while the reconcile runs is never
 * brought back by a later chunk (4b).
 */
export async function reconcileChunk(trx: Knex, ctx: Ctx, after: string, size = SWEEP_CHUNK): Promise<ChunkResult> {
  await lockMapping(trx, ctx.tenantId, 'exclusive');
  const ids = await usersAfter(trx, ctx.tenantId, after, size);
  if (!ids.length) return { state: 'done', next: after, users: 0, diff: emptyDiff() };
  const diff = await syncUsers(trx, ctx, ids, { rules: await listRules(trx, ctx.tenantId, { enabledOnly: true }) });
  return { state: ids.length < size ? 'done' : 'more', next: ids[ids.length - 1]!, users: ids.length, diff };
}

/**
 * Ends a reconcile in the caller's transaction (after its last chunk): derived grants whose
 * rule no longer exists and that no user chunk reached (their user is gone) are drift too; then
 * the status and the audit log record the total.
 */
export async function finishReconcile(trx: Knex, ctx: Ctx, found: number): Promise<number> {
  await lockMapping(trx, ctx.tenantId, 'exclusive');
  const orphans = (
    await trx('agent_grants as g')
      .leftJoin('mapping_rules as r', function () {
        this.on('r.tenant_id', '=', 'g.tenant_id').andOn('r.id', '=', 'g.rule_id');
      })
      .where('g.tenant_id', ctx.tenantId)
      .whereNot('g.rule_id', '')
      .whereNull('r.id')
      .select('g.id')
  ).map((o) => String(o.id));
  await eachChunk(trx, orphans, (part) =>
    trx('agent_grants').where({ tenant_id: ctx.tenantId }).whereIn('id', part).delete(),
  );
  const fixed = found + orphans.length;
  await touchSync(trx, ctx.tenantId, ctx.now.getTime(), { fixed });
  await recordEvent(trx, ctx, {
    event: 'mapping.reconciled',
    entity: { type: 'tenant', id: ctx.tenantId },
    before: null,
    after: { fixed },
  });
  return fixed;
}
