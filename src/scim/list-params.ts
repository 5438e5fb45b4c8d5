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

/** Where the parameters come from: a query string holds text, a SearchRequest body JSON. */
type Source = 'query' | 'body';

const invalid = (name: string, expected: string, value: unknown) =>
  new InvalidInput('invalid_parameter', `${name} must be ${expected}, got ${JSON.stringify(value)}`, {
    scimType: 'invalidValue',
  });

function int(value: unknown, name: string, from: Source): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (from === 'body') {
    if (typeof value !== 'number' || !Number.isInteger(value)) throw invalid(name, 'an integer', value);
    return value;
  }
  const n = typeof value === 'string' ? Number(value.trim()) : NaN;
  if (!Number.isFinite(n)) throw invalid(name, 'an integer', value);
  return Math.trunc(n);
}

function text(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value))
    throw new InvalidInput('invalid_parameter', `${name} may be given only once`, { scimType: 'invalidValue' });
  if (typeof value !== 'string') throw invalid(name, 'a string', value);
  return value;
}

/**
 * `attributes` / `excludedAttributes`: in a query string comma-separated text (or the parameter
 * repeated); in a SearchRequest a list of strings (RFC 7644 §3.4.3).
 */
function names(value: unknown, name: string, from: Source): string | string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) && value.every((v) => typeof v === 'string');
  if (from === 'body' ? !list : !list && typeof value !== 'string')
    throw invalid(name, 'a list of attribute names', value);
  return value as string | string[];
}

/**
 * Paging, sorting, filtering and projection from a query string or a /.search body. RFC 7644
 * §3.4.2.4: startIndex below 1 counts as 1; a negative count as 0; a count above the maximum is
 * clamped to it. A member of the wrong type is a 400 naming it.
 */
function getter(src: Record<string, unknown>) {
  return (name: string) =>
    src[name] ?? src[Object.keys(src).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name];
}

/**
 * `attributes` and `excludedAttributes` alone: the parameters a single-resource request takes.
 * RFC 7644 defines paging, sorting and filtering for lists only, so those are ignored there.
 */
export function parseProjectionParams(
  src: Record<string, unknown>,
  from: Source = 'query',
): Pick<ListParams, 'attributes' | 'excludedAttributes'> {
  const get = getter(src);
  return {
    attributes: names(get('attributes'), 'attributes', from),
    excludedAttributes: names(get('excludedAttributes'), 'excludedAttributes', from),
  };
}

export function parseListParams(src: Record<string, unknown>, from: Source = 'query'): ListParams {
  const get = getter(src);
  const startIndex = Math.max(1, int(get('startIndex'), 'startIndex', from) ?? 1);
  const count = Math.min(MAX_COUNT, Math.max(0, int(get('count'), 'count', from) ?? DEFAULT_COUNT));
  const order = text(get('sortOrder'), 'sortOrder')?.toLowerCase();
  if (order !== undefined && order !== 'ascending' && order !== 'descending') {
    throw new InvalidInput('invalid_sort', `sortOrder must be "ascending" or "descending"`, {
      scimType: 'invalidValue',
    });
  }
  return {
    filter: text(get('filter'), 'filter'),
    startIndex,
    count,
    sortBy: text(get('sortBy'), 'sortBy'),
    sortOrder: order === 'descending' ? 'descending' : 'ascending',
    ...parseProjectionParams(src, from),
  };
}
