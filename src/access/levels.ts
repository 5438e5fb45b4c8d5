import { InvalidInput, type FieldError } from '../errors.js';
import type { Action, Area } from './catalogue.js';

export type Level = 'none' | 'read' | 'edit' | 'manage';
/** What one area is set to: a preset level, or an explicit list of actions. */
export type AreaSetting = Level | Action[];
/** Settings keyed by full area key (`knowledge.faqs`); an absent key means "not set". */
export type AreaSettings = Record<string, AreaSetting>;

const LEVELS: readonly Level[] = ['none', 'read', 'edit', 'manage'];
const ACTIONS: readonly Action[] = ['view', 'create', 'edit', 'delete', 'manage'];

const LEVEL_ACTIONS: Record<Level, readonly Action[]> = {
  none: [],
  read: ['view'],
  edit: ['view', 'create', 'edit', 'delete'],
  manage: ['view', 'create', 'edit', 'delete', 'manage'],
};

export interface IndexedArea {
  area: Area;
  parent: Area | null;
  /** 0 for a top-level area. */
  depth: number;
}

/** Every area of the catalogue by key, in tree pre-order, so a parent always comes before its children. */
export function indexCatalogue(catalogue: Area[]): Map<string, IndexedArea> {
  const index = new Map<string, IndexedArea>();
  const walk = (areas: Area[], parent: Area | null, depth: number): void => {
    for (const area of areas) {
      index.set(area.key, { area, parent, depth });
      walk(area.children, area, depth + 1);
    }
  };
  walk(catalogue, null, 0);
  return index;
}

function isLevel(value: unknown): value is Level {
  return typeof value === 'string' && (LEVELS as readonly string[]).includes(value);
}

function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

/** Sorts into view, create, edit, delete, manage order and drops repeats. */
function canonicalActions(actions: Iterable<Action>): Action[] {
  const set = new Set(actions);
  return ACTIONS.filter((a) => set.has(a));
}

/** The actions a setting grants on an area, limited to those the area has, in canonical order. */
export function actionsOf(setting: AreaSetting, area: Area): Action[] {
  const granted = new Set<Action>(isLevel(setting) ? LEVEL_ACTIONS[setting] : setting);
  return canonicalActions(area.actions.filter((a) => granted.has(a)));
}

/** The highest preset level whose actions are all in the set: ['view','edit'] is read, ['create'] is none. */
export function levelOf(actions: readonly Action[]): Level {
  const set = new Set(actions);
  return [...LEVELS].reverse().find((level) => LEVEL_ACTIONS[level].every((a) => set.has(a))) ?? 'none';
}

/** `read`, or `read (view, edit)` when the actions are not exactly a preset, for messages. */
export function describeActions(actions: readonly Action[]): string {
  const level = levelOf(actions);
  return LEVEL_ACTIONS[level].length === actions.length ? level : `${level} (${actions.join(', ')})`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Validates a client-supplied map of area key → level or action list, listing every problem in
 * one InvalidInput. Answers it normalised: in catalogue order, action lists canonical and deduplicated.
 */
export function parseSettings(catalogue: Area[], input: unknown, pathPrefix = 'areas'): AreaSettings {
  if (!isPlainObject(input)) {
    const message = 'must be an object mapping area keys to a level or a list of actions';
    throw new InvalidInput('invalid_permissions', `${pathPrefix} ${message}`, {
      fields: [{ path: pathPrefix, message }],
    });
  }
  const index = indexCatalogue(catalogue);
  const fields: FieldError[] = Object.keys(input)
    .filter((key) => !index.has(key))
    .map((key) => ({ path: `${pathPrefix}.${key}`, message: `unknown area "${key}"` }));
  const settings: AreaSettings = {};
  for (const [key, { area }] of index) {
    if (!Object.hasOwn(input, key)) continue;
    const value = input[key];
    const problems: string[] = [];
    const hasManage = area.actions.includes('manage');
    if (isLevel(value)) {
      if (value === 'manage' && !hasManage) problems.push(`${area.label} (${key}) has no manage level`);
      else settings[key] = value;
    } else if (Array.isArray(value)) {
      const unknown = value.filter((a) => !isAction(a));
      const actions = canonicalActions(value.filter(isAction));
      if (unknown.length) {
        problems.push(
          `unknown action ${unknown.map((a) => JSON.stringify(a)).join(', ')}; actions are ${ACTIONS.join(', ')}`,
        );
      }
      if (actions.includes('manage') && !hasManage) problems.push(`${area.label} (${key}) has no manage action`);
      // Every other action works on what the user sees; granting it without view grants nothing usable.
      if (actions.length && !actions.includes('view'))
        problems.push('a list of actions must include view: you cannot change what you cannot see');
      if (!problems.length) settings[key] = actions;
    } else {
      problems.push(
        `must be one of ${LEVELS.join(', ')} or a list of actions, got ${JSON.stringify(value) ?? typeof value}`,
      );
    }
    fields.push(...problems.map((message) => ({ path: `${pathPrefix}.${key}`, message })));
  }
  if (fields.length) {
    throw new InvalidInput(
      'invalid_permissions',
      `invalid area permissions: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
      { fields },
    );
  }
  return settings;
}
