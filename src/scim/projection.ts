import { resolvePath, containerKey, type ResourceType } from '../directory/model/registry.js';

/** One requested attribute, as where it sits in a resource: `[container?, attr, sub?]`. */
interface Selector {
  container: string | null;
  attr: string;
  sub?: string;
}

export interface Projection {
  attributes?: Selector[];
  excluded?: Selector[];
}

function selectors(rt: ResourceType, list: string | string[] | undefined): Selector[] | undefined {
  if (list === undefined) return undefined;
  const items = (Array.isArray(list) ? list : list.split(',')).map((s) => s.trim()).filter(Boolean);
  const out: Selector[] = [];
  for (const item of items) {
    // `emails[type eq "work"]` (sent by Microsoft's tests) selects the attribute.
    const path = item.replace(/\[[^\]]*\]/, '');
    const resolved = resolvePath(rt, path);
    // Unknown names select nothing: a client asking for an attribute we do not keep gets none.
    if (!resolved) continue;
    out.push({ container: containerKey(resolved, rt), attr: resolved.attr.name, sub: resolved.sub?.name });
  }
  return out;
}

/** RFC 7644 §3.9: `attributes` and `excludedAttributes`, the latter ignored when both are given. */
export function parseProjection(
  rt: ResourceType,
  attributes?: string | string[],
  excluded?: string | string[],
): Projection {
  const a = selectors(rt, attributes);
  return a?.length ? { attributes: a } : { excluded: selectors(rt, excluded) };
}

const ALWAYS = new Set(['id', 'schemas']);

/** Whether a top-level attribute would appear, so callers can skip loading it (members, groups). */
export function includes(p: Projection, attr: string): boolean {
  if (p.attributes) return p.attributes.some((s) => s.container === null && s.attr === attr);
  return !(p.excluded ?? []).some((s) => s.container === null && s.attr === attr && !s.sub);
}

type Json = Record<string, unknown>;

function pick(resource: Json, sels: Selector[]): Json {
  const out: Json = {};
  for (const key of Object.keys(resource)) if (ALWAYS.has(key)) out[key] = resource[key];
  for (const s of sels) {
    const src = s.container ? (resource[s.container] as Json | undefined) : resource;
    if (!src || src[s.attr] === undefined) continue;
    const dst = s.container ? ((out[s.container] ??= {}) as Json) : out;
    const value = src[s.attr];
    if (!s.sub) {
      dst[s.attr] = value;
    } else if (Array.isArray(value)) {
      const prior = (dst[s.attr] as Json[] | undefined) ?? value.map(() => ({}));
      dst[s.attr] = value.map((el, i) => ({
        ...prior[i],
        ...(el && (el as Json)[s.sub!] !== undefined ? { [s.sub!]: (el as Json)[s.sub!] } : {}),
      }));
    } else if (value && typeof value === 'object' && (value as Json)[s.sub] !== undefined) {
      dst[s.attr] = { ...((dst[s.attr] as Json | undefined) ?? {}), [s.sub]: (value as Json)[s.sub] };
    }
  }
  return out;
}

function drop(resource: Json, sels: Selector[]): Json {
  const out: Json = structuredClone(resource);
  for (const s of sels) {
    if (!s.container && ALWAYS.has(s.attr)) continue;
    const dst = s.container ? (out[s.container] as Json | undefined) : out;
    if (!dst) continue;
    if (!s.sub) delete dst[s.attr];
    else if (Array.isArray(dst[s.attr])) for (const el of dst[s.attr] as Json[]) delete el[s.sub];
    else if (dst[s.attr] && typeof dst[s.attr] === 'object') delete (dst[s.attr] as Json)[s.sub];
  }
  return out;
}

export function project(resource: Json, p: Projection): Json {
  if (p.attributes) return pick(resource, p.attributes);
  if (p.excluded?.length) return drop(resource, p.excluded);
  return resource;
}
