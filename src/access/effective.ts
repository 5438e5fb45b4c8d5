import { NotFound, Unprocessable } from '../errors.js';
import type { Action, Area } from './catalogue.js';
import {
  actionsOf,
  describeActions,
  indexCatalogue,
  levelOf,
  type AreaSetting,
  type AreaSettings,
  type IndexedArea,
  type Level,
} from './levels.js';

export interface EffectiveArea {
  level: Level;
  actions: Action[];
  /** Why the area has these actions, for people reading a permission report. */
  reason: string;
}
/** Every area of the catalogue by key, in tree pre-order. */
export type EffectiveTree = Record<string, EffectiveArea>;

export type Role = 'admin' | 'member';
export type UserStatus = 'invited' | 'active' | 'suspended' | 'deleted';

export interface AssignedTemplate {
  id: string;
  name: string;
  areas: AreaSettings;
}

export interface Subject {
  role: Role;
  status: UserStatus;
  own: AreaSettings;
  template?: AssignedTemplate | null;
}

const NO_ACCESS: Record<Exclude<UserStatus, 'active'>, string> = {
  invited: 'user is invited: no access until the invitation is accepted',
  suspended: 'user is suspended: no access until reactivated',
  deleted: 'no such user: never existed or deleted',
};

const named = (area: Area): string => `${area.label} (${area.key})`;

const intersect = (actions: readonly Action[], allowed: readonly Action[]): Action[] =>
  actions.filter((a) => allowed.includes(a));

// Own properties only: a catalogue may well have an area keyed `constructor`.
const lookup = <T>(record: Record<string, T>, key: string): T | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined;

/** The nearest ancestor of an area that the settings set, with its setting, if any. */
function setAncestor(
  index: Map<string, IndexedArea>,
  settings: AreaSettings,
  entry: IndexedArea,
): { area: Area; setting: AreaSetting } | null {
  for (let up = entry.parent; up; up = index.get(up.key)?.parent ?? null) {
    const setting = lookup(settings, up.key);
    if (setting !== undefined) return { area: up, setting };
  }
  return null;
}

/**
 * Refuses settings where a sub-section would be less restrictive than its parent, naming the first
 * offender in tree order. An area is held to its nearest ancestor set in `settings`, or, when no
 * ancestor is set there, to its parent's actions in `base` (what the area would get from elsewhere,
 * such as a role template).
 */
export function checkInheritance(catalogue: Area[], settings: AreaSettings, base?: EffectiveTree): void {
  const index = indexCatalogue(catalogue);
  for (const entry of index.values()) {
    const setting = lookup(settings, entry.area.key);
    if (setting === undefined || !entry.parent) continue;
    const ancestor = setAncestor(index, settings, entry);
    let limit: { area: Area; actions: Action[] };
    if (ancestor) limit = { area: ancestor.area, actions: actionsOf(ancestor.setting, ancestor.area) };
    else if (base) limit = { area: entry.parent, actions: lookup(base, entry.parent.key)?.actions ?? [] };
    else continue;
    const actions = actionsOf(setting, entry.area);
    if (actions.every((a) => limit.actions.includes(a))) continue;
    const relation = limit.area === entry.parent ? 'parent' : 'ancestor';
    throw new Unprocessable(
      'less_restrictive_than_parent',
      `"${entry.area.key}" cannot be ${describeActions(actions)}: its ${relation} ${named(limit.area)} is ${describeActions(limit.actions)}, and a sub-section may be more restrictive than its parent, never less`,
      { details: { area: entry.area.key, parent: limit.area.key, parentLevel: levelOf(limit.actions) } },
    );
  }
}

interface Source {
  actions: Action[];
  reason: string;
}

/**
 * Where a member's actions on an area come from, before the parent's limit: own setting, else an
 * own setting above it, else the template's setting, else a template setting above it.
 * `above` is the parent's final entry, already computed since parents come first in pre-order.
 */
function memberSource(
  index: Map<string, IndexedArea>,
  subject: Subject,
  entry: IndexedArea,
  above: EffectiveArea | undefined,
): Source {
  const { area, parent } = entry;
  const inherit = (): Source => {
    if (!parent || !above) return { actions: [], reason: 'no permission set' };
    return {
      actions: intersect(above.actions, area.actions),
      reason: above.actions.length ? `inherited from parent ${named(parent)}` : `parent ${named(parent)} is none`,
    };
  };
  const own = lookup(subject.own, area.key);
  if (own !== undefined) return { actions: actionsOf(own, area), reason: 'own setting' };
  // The user's own setting on an ancestor governs every descendant they did not set, whatever the template says.
  if (setAncestor(index, subject.own, entry)) return inherit();
  const template = subject.template;
  if (!template) return inherit();
  const fromTemplate = lookup(template.areas, area.key);
  if (fromTemplate !== undefined)
    return { actions: actionsOf(fromTemplate, area), reason: `role template "${template.name}"` };
  if (setAncestor(index, template.areas, entry)) return inherit();
  return { actions: [], reason: `role template "${template.name}" does not grant this area` };
}

/**
 * What a user may do in every area, with the reason for each: status first, then role, then the
 * user's own settings over their role template, each limited by the area's parent.
 */
export function effectivePermissions(catalogue: Area[], subject: Subject): EffectiveTree {
  const index = indexCatalogue(catalogue);
  const tree: EffectiveTree = {};
  const put = (area: Area, actions: Action[], reason: string): void => {
    tree[area.key] = { level: levelOf(actions), actions, reason };
  };
  for (const entry of index.values()) {
    const { area, parent } = entry;
    if (subject.status !== 'active') {
      put(area, [], NO_ACCESS[subject.status]);
      continue;
    }
    if (subject.role === 'admin') {
      put(area, [...area.actions], 'admin role grants everything');
      continue;
    }
    const above = parent ? lookup(tree, parent.key) : undefined;
    const source = memberSource(index, subject, entry, above);
    if (!parent || !above) {
      put(area, source.actions, source.reason);
      continue;
    }
    // A setting was valid when saved, but the parent (a template, say) may have been narrowed since.
    const actions = intersect(source.actions, above.actions);
    if (actions.length === source.actions.length) put(area, actions, source.reason);
    else if (!above.actions.length) put(area, actions, `parent ${named(parent)} is none`);
    else put(area, actions, `${source.reason}, limited by parent ${named(parent)} at ${above.level}`);
  }
  return tree;
}

/** Whether the tree allows one action on one area, with a sentence saying why. */
export function checkArea(tree: EffectiveTree, areaKey: string, action: Action): { allowed: boolean; reason: string } {
  const entry = lookup(tree, areaKey);
  if (!entry) throw new NotFound('unknown_area', `there is no area "${areaKey}"`);
  const what = `${action} on ${areaKey}`;
  if (entry.actions.includes(action)) return { allowed: true, reason: `${what}: allowed: ${entry.reason}` };
  if (!entry.actions.length) return { allowed: false, reason: `${what}: denied: ${entry.reason}` };
  return {
    allowed: false,
    reason: `${what}: denied: ${areaKey} is ${describeActions(entry.actions)} (${entry.reason})`,
  };
}
