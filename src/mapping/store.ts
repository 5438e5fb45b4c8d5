import type { Knex } from 'knex';
import { NotFound } from '../errors.js';
import { newId } from '../db/ids.js';
import { parseJson, toBool, toMs } from '../db/rows.js';
import type { MappingRule, RuleActions, RuleMatch } from './rules.js';

type Row = Record<string, unknown>;

function ruleFromRow(r: Row): MappingRule {
  return {
    id: String(r.id),
    name: String(r.name),
    description: (r.description as string | null) ?? null,
    enabled: toBool(r.enabled),
    position: Number(r.position),
    match: {
      source: r.match_source,
      field: r.match_field,
      operator: r.match_operator,
      value: String(r.match_value),
      ...(r.match_connection_id ? { connectionId: String(r.match_connection_id) } : {}),
    } as RuleMatch,
    actions: parseJson<RuleActions>(r.actions_json, { groups: [], agents: [] }),
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
}

export interface RuleInput {
  name: string;
  description?: string | null;
  enabled: boolean;
  position?: number;
  match: RuleMatch;
  actions: RuleActions;
}

function notFound(id: string): NotFound {
  return new NotFound('rule_not_found', `no mapping rule with id "${id}"`);
}

/** Rules in evaluation order. */
export async function listRules(
  db: Knex,
  tenantId: string,
  opts: { enabledOnly?: boolean } = {},
): Promise<MappingRule[]> {
  const q = db('mapping_rules').where({ tenant_id: tenantId });
  if (opts.enabledOnly) q.andWhere({ enabled: true });
  return (await q.orderBy('position').orderBy('id')).map(ruleFromRow);
}

export async function getRule(db: Knex, tenantId: string, id: string): Promise<MappingRule | undefined> {
  const row = await db('mapping_rules').where({ tenant_id: tenantId, id }).first();
  return row ? ruleFromRow(row) : undefined;
}

export async function requireRule(db: Knex, tenantId: string, id: string): Promise<MappingRule> {
  const r = await getRule(db, tenantId, id);
  if (!r) throw notFound(id);
  return r;
}

function columns(input: RuleInput) {
  return {
    name: input.name.trim(),
    description: input.description ?? null,
    enabled: input.enabled,
    match_source: input.match.source,
    match_field: input.match.field,
    match_operator: input.match.operator,
    match_value: input.match.value,
    match_connection_id: input.match.source === 'connection' ? (input.match.connectionId ?? null) : null,
    actions_json: JSON.stringify(input.actions),
  };
}

export async function insertRule(trx: Knex, tenantId: string, input: RuleInput, now: number): Promise<MappingRule> {
  const last = await trx('mapping_rules').where({ tenant_id: tenantId }).max({ p: 'position' }).first();
  const row = {
    tenant_id: tenantId,
    id: newId(),
    ...columns(input),
    position: input.position ?? Number(last?.p ?? 0) + 1,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  await trx('mapping_rules').insert(row);
  return ruleFromRow(row);
}

/** Whether an edit changes what the rule derives (and so needs a new version and a sweep). */
function changesOutput(
  a: Pick<MappingRule, 'enabled' | 'match' | 'actions'>,
  b: Pick<MappingRule, 'enabled' | 'match' | 'actions'>,
): boolean {
  return (
    a.enabled !== b.enabled ||
    JSON.stringify(a.match) !== JSON.stringify(b.match) ||
    JSON.stringify(a.actions) !== JSON.stringify(b.actions)
  );
}

/**
 * Writes a rule read under the exclusive mapping lock. The version moves only when what the
 * rule derives changes: rows of older versions stop counting at once (src/mapping/live.ts),
 * while a rename or a move in the list revokes nothing.
 */
export async function writeRule(
  trx: Knex,
  tenantId: string,
  current: MappingRule,
  input: RuleInput,
  now: number,
): Promise<MappingRule> {
  const cols = { ...columns(input), position: input.position ?? current.position };
  const bump = changesOutput(current, { enabled: cols.enabled, match: input.match, actions: input.actions });
  await trx('mapping_rules')
    .where({ tenant_id: tenantId, id: current.id })
    .update({ ...cols, updated_at: now, ...(bump ? { version: current.version + 1 } : {}) });
  return (await getRule(trx, tenantId, current.id))!;
}

export async function deleteRuleRow(trx: Knex, tenantId: string, id: string): Promise<void> {
  await trx('mapping_rules').where({ tenant_id: tenantId, id }).delete();
}

/** Notes that the directory changed (the sync status shows when). */
export async function touchSync(
  trx: Knex,
  tenantId: string,
  now: number,
  reconcile?: { fixed: number },
): Promise<void> {
  const cols = reconcile ? { last_reconcile_at: now, last_reconcile_fixed: reconcile.fixed } : { last_change_at: now };
  const updated = await trx('mapping_sync').where({ tenant_id: tenantId }).update(cols);
  if (updated === 0) {
    await trx('mapping_sync')
      .insert({
        tenant_id: tenantId,
        last_change_at: null,
        last_reconcile_at: null,
        last_reconcile_fixed: null,
        ...cols,
      })
      .onConflict('tenant_id')
      .merge(cols);
  }
}

export async function syncStatus(db: Knex, tenantId: string) {
  const row = await db('mapping_sync').where({ tenant_id: tenantId }).first();
  return {
    lastChangeAt: toMs(row?.last_change_at ?? null),
    lastReconcileAt: toMs(row?.last_reconcile_at ?? null),
    lastReconcileFixed:
      row?.last_reconcile_fixed === null || row?.last_reconcile_fixed === undefined
        ? null
        : Number(row.last_reconcile_fixed),
  };
}
