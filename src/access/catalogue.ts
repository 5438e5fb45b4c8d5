import fs from 'node:fs';
import { Ajv } from 'ajv';

export type Action = 'view' | 'create' | 'edit' | 'delete' | 'manage';

/** A catalogue as written in a data file: labels, optional descriptions, nested children. */
export interface AreaInput {
  label: string;
  description?: string;
  /** Whether the area has a `manage` level above `edit`. */
  manage?: boolean;
  children?: AreaInput[];
}
export type CatalogueInput = AreaInput[];

export interface Area {
  key: string;
  label: string;
  description?: string;
  actions: Action[];
  children: Area[];
}

const BASE_ACTIONS: Action[] = ['view', 'create', 'edit', 'delete'];

const inputSchema = {
  $id: 'catalogue',
  type: 'array',
  minItems: 1,
  items: { $ref: '#/$defs/area' },
  $defs: {
    area: {
      type: 'object',
      additionalProperties: false,
      required: ['label'],
      properties: {
        label: { type: 'string', minLength: 1, maxLength: 100 },
        description: { type: 'string', maxLength: 500 },
        manage: { type: 'boolean' },
        children: { type: 'array', items: { $ref: '#/$defs/area' } },
      },
    },
  },
} as const;

const validateInput = new Ajv({ allErrors: true }).compile(inputSchema);

/** `Real-time config` → `real_time_config`, `A/B testing` → `a_b_testing`. */
export function keyOfLabel(label: string): string {
  return label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

export class CatalogueError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid area catalogue:\n  ${problems.join('\n  ')}`);
    this.name = 'CatalogueError';
  }
}

/**
 * Builds the catalogue tree with full keys (`knowledge.faqs`), listing every problem at once:
 * shape errors, labels that give no key, and two areas with the same key.
 */
export function buildCatalogue(input: unknown): Area[] {
  if (!validateInput(input)) {
    throw new CatalogueError(
      (validateInput.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`),
    );
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const build = (a: AreaInput, parent: string | null): Area => {
    const own = keyOfLabel(a.label);
    const key = parent ? `${parent}.${own}` : own;
    if (!own) problems.push(`area "${a.label}" has no letters or digits to make a key from`);
    else if (seen.has(key)) problems.push(`two areas have the key "${key}"`);
    seen.add(key);
    return {
      key,
      label: a.label,
      ...(a.description ? { description: a.description } : {}),
      actions: a.manage ? [...BASE_ACTIONS, 'manage'] : [...BASE_ACTIONS],
      children: (a.children ?? []).map((c) => build(c, key)),
    };
  };
  const tree = (input as CatalogueInput).map((a) => build(a, null));
  if (problems.length) throw new CatalogueError(problems);
  return tree;
}

/** Reads a deployment's own catalogue (AREA_CATALOGUE_FILE), or answers the default one. */
export function loadCatalogue(file: string | undefined, fallback: CatalogueInput): Area[] {
  if (!file) return buildCatalogue(fallback);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CatalogueError([`${file}: ${(err as Error).message}`]);
  }
  return buildCatalogue(parsed);
}
