import type { ResolvedPath } from '../../directory/model/registry.js';

/** RFC 7644 §3.4.2.2 comparison operators. */
export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';

/** A literal as written: a JSON string/number/boolean/null, or an unquoted word (Entra). */
export type FilterValue = string | number | boolean | null;

/**
 * A parsed filter. Attribute paths are resolved against the resource type at parse time, so an
 * unknown attribute is a parse error (400 invalidFilter), never a silent non-match.
 */
export type Filter =
  | { kind: 'compare'; path: ResolvedPath; op: CompareOp; value: FilterValue }
  | { kind: 'present'; path: ResolvedPath }
  | { kind: 'and'; left: Filter; right: Filter }
  | { kind: 'or'; left: Filter; right: Filter }
  | { kind: 'not'; filter: Filter }
  /**
   * `emails[type eq "work" and value co "@x"]`: `filter` is evaluated on each element of the
   * multi-valued attribute `path.attr`, its paths are sub-attributes of it. Entra's
   * `emails[type eq "work"].value eq "x"` (outside RFC grammar) parses as a valuePath whose
   * filter is `type eq "work" and value eq "x"`.
   */
  | { kind: 'valuePath'; path: ResolvedPath; filter: Filter };
