import type { AttributeDef } from '../../directory/model/definitions.js';
import { findSubAttr, resolvePath, type ResolvedPath, type ResourceType } from '../../directory/model/registry.js';
import type { CompareOp, Filter, FilterValue } from './ast.js';
import { describeToken, filterError, Lexer, type Token, type ValueToken } from './lexer.js';

/**
 * RFC 7644 §3.4.2.2 filters, with the tolerances real IdPs need:
 * - operators, keywords and attribute names in any case (`DisplayName EQ "x"`);
 * - unquoted values (`externalId eq jyoung`, `meta.created gt 2015-10-10T14:38:21.8617979-07:00`):
 *   against a string or date attribute the word is taken as written, only `null` keeps its
 *   JSON meaning; against a boolean, `true`/`false`;
 * - Entra's `emails[type eq "work"].value eq "x"`, parsed as
 *   `emails[type eq "work" and value eq "x"]`;
 * - `not` before any term, not only before parentheses.
 * A bare multi-valued complex attribute (`emails eq "x"`, `members eq "id"`) means its `value`.
 * Paths inside brackets resolve to the bracketed attribute with `sub` set.
 */
export function parseFilter(text: string, rt: ResourceType): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw filterError(`the filter is longer than ${MAX_FILTER_LENGTH} characters`);
  if (text.trim() === '') throw filterError('the filter is empty');
  return new Parser(text, rt).parse();
}

/** Enough for a hundred `id eq "…" or …` terms, which some clients send to look up a batch. */
export const MAX_FILTER_LENGTH = 10_000;
export const MAX_FILTER_NODES = 200;
/** Parentheses and `not`s deeper than this are abuse, not a directory query; it also bounds recursion. */
export const MAX_FILTER_DEPTH = 32;
/**
 * `co`, `sw` and `ew` become LIKE patterns no index serves, so each one scans the tenant's rows;
 * SQLite cannot interrupt a running query, so their number is bounded before it runs.
 */
export const MAX_FILTER_SUBSTRING_TERMS = 10;

const COMPARE_OPS: readonly string[] = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'] satisfies CompareOp[];
const ORDERING_OPS: readonly string[] = ['gt', 'ge', 'lt', 'le'];
const SUBSTRING_OPS: readonly string[] = ['co', 'sw', 'ew'];

function isCompareOp(s: string): s is CompareOp {
  return COMPARE_OPS.includes(s);
}

/** The bracket the parser waits for, and where its partner was opened (for the error). */
type Closer = { kind: ')' | ']'; openedAt: number };

class Parser {
  private readonly lexer: Lexer;
  private nodes = 0;
  private depth = 0;
  private substrings = 0;

  constructor(
    text: string,
    private readonly rt: ResourceType,
  ) {
    this.lexer = new Lexer(text);
  }

  parse(): Filter {
    const filter = this.or(undefined);
    const t = this.lexer.next();
    if (t.kind !== 'end') throw filterError(`expected "and" or "or" at position ${t.pos}, found ${describeToken(t)}`);
    return filter;
  }

  /** `parent` is set inside `attr[...]`, where names are sub-attributes of `attr`. */
  private or(parent: ResolvedPath | undefined): Filter {
    let left = this.and(parent);
    while (this.keyword('or')) left = this.node({ kind: 'or', left, right: this.and(parent) });
    return left;
  }

  private and(parent: ResolvedPath | undefined): Filter {
    let left = this.unary(parent);
    while (this.keyword('and')) left = this.node({ kind: 'and', left, right: this.unary(parent) });
    return left;
  }

  private unary(parent: ResolvedPath | undefined): Filter {
    const t = this.lexer.peek();
    if (t.kind === 'word' && t.text.toLowerCase() === 'not') {
      this.lexer.next();
      return this.node({ kind: 'not', filter: this.nested(t, () => this.unary(parent)) });
    }
    if (t.kind === '(') {
      this.lexer.next();
      const inner = this.nested(t, () => this.or(parent));
      this.close({ kind: ')', openedAt: t.pos });
      return inner;
    }
    return this.attrExpr(parent);
  }

  private attrExpr(parent: ResolvedPath | undefined): Filter {
    const t = this.lexer.next();
    if (t.kind !== 'word')
      throw filterError(`expected an attribute name at position ${t.pos}, found ${describeToken(t)}`);
    const path = this.resolve(t, parent);
    const after = this.lexer.peek();
    if (after.kind === '[') return this.valuePath(path, t, after, parent);
    return this.operation(path, t);
  }

  private resolve(t: Extract<Token, { kind: 'word' }>, parent: ResolvedPath | undefined): ResolvedPath {
    if (!parent) {
      const path = resolvePath(this.rt, t.text);
      if (!path) throw filterError(`unknown attribute "${t.text}" at position ${t.pos}`);
      return path;
    }
    const sub = findSubAttr(parent.attr, t.text);
    if (!sub) throw filterError(`"${parent.attr.name}" has no sub-attribute "${t.text}" (position ${t.pos})`);
    return { ...parent, sub };
  }

  /** `attr[filter]`, optionally followed by Entra's `.sub op value`. */
  private valuePath(
    path: ResolvedPath,
    name: Extract<Token, { kind: 'word' }>,
    open: Token,
    parent: ResolvedPath | undefined,
  ): Filter {
    if (parent) throw filterError(`a [filter] cannot be nested inside another one, at position ${open.pos}`);
    if (path.sub || path.attr.type !== 'complex' || !path.attr.multiValued) {
      throw filterError(
        `"${name.text}" is not a multi-valued complex attribute, so it takes no [filter] (position ${open.pos})`,
      );
    }
    this.lexer.next();
    const inner = this.nested(open, () => this.or(path));
    this.close({ kind: ']', openedAt: open.pos });
    const next = this.lexer.peek();
    if (next.kind !== 'word' || !next.text.startsWith('.'))
      return this.node({ kind: 'valuePath', path, filter: inner });
    this.lexer.next();
    const subName = next.text.slice(1);
    const sub = findSubAttr(path.attr, subName);
    if (!sub) throw filterError(`"${path.attr.name}" has no sub-attribute "${subName}" (position ${next.pos})`);
    const last = this.operation({ ...path, sub }, { ...next, text: `${name.text}[…]${next.text}` });
    return this.node({ kind: 'valuePath', path, filter: this.node({ kind: 'and', left: inner, right: last }) });
  }

  /** `pr`, or an operator and its value, after the attribute `name`. */
  private operation(path: ResolvedPath, name: Extract<Token, { kind: 'word' }>): Filter {
    const t = this.lexer.next();
    const op = t.kind === 'word' ? t.text.toLowerCase() : '';
    if (op === 'pr') return this.node({ kind: 'present', path });
    if (!isCompareOp(op)) {
      throw filterError(
        `expected a comparison operator after "${name.text}" at position ${t.pos}, found ${describeToken(t)}`,
      );
    }
    const target = comparable(path, name);
    const def = target.sub ?? target.attr;
    checkOperator(def, op, name.text, t.pos);
    if (SUBSTRING_OPS.includes(op) && ++this.substrings > MAX_FILTER_SUBSTRING_TERMS) {
      throw filterError(
        `the filter has more than ${MAX_FILTER_SUBSTRING_TERMS} "co", "sw" or "ew" comparisons (position ${t.pos})`,
      );
    }
    const v = this.lexer.value();
    if (v.kind !== 'word' && v.kind !== 'string') {
      throw filterError(`expected a value after "${op}" at position ${v.pos}, found ${describeToken(v)}`);
    }
    return this.node({ kind: 'compare', path: target, op, value: literal(def, op, v, name.text) });
  }

  private keyword(word: 'and' | 'or'): boolean {
    const t = this.lexer.peek();
    if (t.kind !== 'word' || t.text.toLowerCase() !== word) return false;
    this.lexer.next();
    return true;
  }

  private close(closer: Closer): void {
    const t = this.lexer.next();
    if (t.kind === closer.kind) return;
    throw filterError(
      `expected "and", "or" or "${closer.kind}" (closing the one opened at position ${closer.openedAt}) at position ${t.pos}, found ${describeToken(t)}`,
    );
  }

  private nested<T>(at: Token, parse: () => T): T {
    if (++this.depth > MAX_FILTER_DEPTH)
      throw filterError(`the filter nests deeper than ${MAX_FILTER_DEPTH} levels at position ${at.pos}`);
    const result = parse();
    this.depth--;
    return result;
  }

  private node(f: Filter): Filter {
    if (++this.nodes > MAX_FILTER_NODES) throw filterError(`the filter has more than ${MAX_FILTER_NODES} terms`);
    return f;
  }
}

/**
 * The path a comparison applies to. RFC 7644 §3.4.2.2 wants a sub-attribute for complex ones;
 * a bare multi-valued one with a `value` (`emails eq "x"`, `members eq "id"`) means that value,
 * as RFC 7643 §2.4 makes `value` the default sub-attribute.
 */
function comparable(path: ResolvedPath, name: Extract<Token, { kind: 'word' }>): ResolvedPath {
  if (path.sub || path.attr.type !== 'complex') return path;
  const value = path.attr.multiValued ? findSubAttr(path.attr, 'value') : undefined;
  if (value) return { ...path, sub: value };
  const example = path.attr.subAttributes?.[0]?.name ?? 'value';
  throw filterError(
    `"${name.text}" at position ${name.pos} is complex: compare one of its sub-attributes, e.g. "${name.text}.${example}"`,
  );
}

/** RFC 7644 §3.4.2.2: ordering on booleans and binaries is a 400; substrings of booleans and dates mean nothing. */
function checkOperator(def: AttributeDef, op: CompareOp, name: string, pos: number): void {
  const ordering = ORDERING_OPS.includes(op) && (def.type === 'boolean' || def.type === 'binary');
  const substring = SUBSTRING_OPS.includes(op) && (def.type === 'boolean' || def.type === 'dateTime');
  if (ordering || substring)
    throw filterError(`"${op}" at position ${pos} does not apply to the ${def.type} attribute "${name}"`);
}

function literal(def: AttributeDef, op: CompareOp, t: ValueToken, name: string): FilterValue {
  const value = literalValue(def, t);
  const shown = JSON.stringify(t.kind === 'string' ? t.value : t.text);
  if (value === null) {
    if (op !== 'eq' && op !== 'ne')
      throw filterError(`null at position ${t.pos} can only be compared with "eq" or "ne"`);
    return value;
  }
  if (def.type === 'boolean' && booleanOf(value) === undefined) {
    throw filterError(`"${name}" is boolean: expected true or false at position ${t.pos}, found ${shown}`);
  }
  if (def.type === 'dateTime' && (typeof value !== 'string' || parseDateTime(value) === undefined)) {
    throw filterError(
      `"${name}" is a dateTime: ${shown} at position ${t.pos} is not a date such as 2015-10-10T14:38:21Z`,
    );
  }
  return value;
}

function literalValue(def: AttributeDef, t: ValueToken): FilterValue {
  if (t.kind === 'string') return t.value;
  if (t.text === 'null') return null;
  if (def.type === 'boolean' && (t.text === 'true' || t.text === 'false')) return t.text === 'true';
  return t.text;
}

/** A boolean literal, or Entra's "True"/"False" strings; undefined for anything else. */
export function booleanOf(value: FilterValue): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Epoch milliseconds of an xsd:dateTime (RFC 7643 §2.3.5) or a bare date. Any number of
 * fractional digits is accepted (.NET sends seven) and cut to milliseconds; no offset means
 * UTC, never the server's local time. Undefined when the text is not such a date.
 */
export function parseDateTime(text: string): number | undefined {
  const m = DATE_TIME.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((p) => Number(p ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (new Date(utc).getUTCDate() !== day || day < 1) return undefined;
  return utc - offsetMinutes(m[8]) * 60_000;
}

function offsetMinutes(zone: string | undefined): number {
  if (!zone || zone.toUpperCase() === 'Z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0);
  return zone.startsWith('-') ? -minutes : minutes;
}
