import { InvalidInput } from '../errors.js';

export const DEFAULT_COUNT = 100;
export const MAX_COUNT = 1000;

export interface ListParams {
  filter?: string;
  startIndex: number;
  count: number;
  sortBy?: string;
  sortOrder: 'ascending' | 'descending';
  attributes?: string | string[];
  excludedAttributes?: string | string[];
}

function int(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (!Number.isFinite(n)) throw new InvalidInput('invalid_paging', `${name} must be an integer, got ${JSON.stringify(value)}`, { scimType: 'invalidValue' });
  return Math.trunc(n);
}

function text(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) throw new InvalidInput('invalid_parameter', `${name} may be given only once`, { scimType: 'invalidValue' });
  return String(value);
}

/**
 * Paging, sorting, filtering and projection from a query string or a /.search body. RFC 7644
 * §3.4.2.4: startIndex below 1 counts as 1; a negative count as 0; a count above the maximum is
 * clamped to it.
 */
export function parseListParams(src: Record<string, unknown>): ListParams {
  const get = (name: string) => src[name] ?? src[Object.keys(src).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name];
  const startIndex = Math.max(1, int(get('startIndex'), 'startIndex') ?? 1);
  const count = Math.min(MAX_COUNT, Math.max(0, int(get('count'), 'count') ?? DEFAULT_COUNT));
  const order = text(get('sortOrder'), 'sortOrder')?.toLowerCase();
  if (order !== undefined && order !== 'ascending' && order !== 'descending') {
    throw new InvalidInput('invalid_sort', `sortOrder must be "ascending" or "descending"`, { scimType: 'invalidValue' });
  }
  const attributes = get('attributes') as string | string[] | undefined;
  const excludedAttributes = get('excludedAttributes') as string | string[] | undefined;
  return {
    filter: text(get('filter'), 'filter'),
    startIndex,
    count,
    sortBy: text(get('sortBy'), 'sortBy'),
    sortOrder: order === 'descending' ? 'descending' : 'ascending',
    attributes,
    excludedAttributes,
  };
}
