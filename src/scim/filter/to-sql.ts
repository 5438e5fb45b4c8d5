/**
 * SCIM filters and sortBy as SQL over the directory tables, the same SQL on SQLite and MariaDB.
 *
 *   filterToSql(filter, rt, alias = 'r'): { sql, bindings }
 *     A boolean expression over `users as <alias>` (USER_RT) or `idp_groups as <alias>` (GROUP_RT):
 *     knex('users as r').where('r.tenant_id', tenantId).whereRaw(sql, bindings)
 *
 *   sortToSql(sortBy, rt, order = 'ascending', alias = 'r'): { sql, bindings }
 *     An ORDER BY list (without the keywords) that puts resources lacking the value last when
 *     ascending and first when descending (RFC 7644 §3.4.2.3); append the id for a stable order:
 *     query.orderByRaw(`${sql}, r.id`, bindings)
 *
 * Values travel only as bindings. Case-insensitive attributes are compared on prepared keys
 * (caseMappedKey, valueKey), and both databases compare those bytewise (utf8mb4_bin tables,
 * SQLite's case_sensitive_like), so both give the same answer. Every predicate is true or false,
 * never NULL, so `not` and `ne` select the resources that lack the attribute. `alias` is written
 * into the SQL as is: it must be the caller's own identifier, never input.
 */
import { InvalidInput } from '../../errors.js';
import { escapeLike } from '../../db/dialect.js';
import type { AttributeDef } from '../../directory/model/definitions.js';
import {
  canonicalPath,
  containerKey,
  findSubAttr,
  resolvePath,
  type ResolvedPath,
  type ResourceType,
} from '../../directory/model/registry.js';
import { caseMappedKey, valueKey } from '../../directory/model/value-key.js';
import type { CompareOp, Filter, FilterValue } from './ast.js';
import { filterError } from './lexer.js';
import { compareKeys, dateLiteral, literalKey } from './match.js';

export interface SqlFragment {
  sql: string;
  bindings: (string | number)[];
}

type PositiveOp = Exclude<CompareOp, 'ne'>;
type Literal = Exclude<FilterValue, null>;

const TRUE: SqlFragment = { sql: '1 = 1', bindings: [] };
const FALSE: SqlFragment = { sql: '1 = 0', bindings: [] };
const SQL_OPS: Record<Exclude<PositiveOp, 'co' | 'sw' | 'ew'>, string> = {
  eq: '=',
  gt: '>',
  ge: '>=',
  lt: '<',
  le: '<=',
};

export function filterToSql(filter: Filter, rt: ResourceType, alias = 'r'): SqlFragment {
  const compiler = new Compiler(rt, alias);
  return compiler.compile(filter, new ResourceScope(compiler));
}

export function sortToSql(
  sortBy: string,
  rt: ResourceType,
  order: 'ascending' | 'descending' = 'ascending',
  alias = 'r',
): SqlFragment {
  const found = resolvePath(rt, sortBy);
  if (!found) throw sortError(`unknown sortBy attribute "${sortBy}"`);
  const path = sortablePath(found, sortBy);
  const expr = sortExpression(targetOf(path, rt, alias), path);
  if (!expr) throw sortError(`sortBy "${sortBy}" is not sortable`);
  const dir = order === 'descending' ? 'DESC' : 'ASC';
  // Both databases sort NULL lowest; RFC 7644 wants missing values last when ascending.
  return {
    sql: `CASE WHEN ${expr.sql} IS NULL THEN 1 ELSE 0 END ${dir}, ${expr.sql} ${dir}`,
    bindings: [...expr.bindings, ...expr.bindings],
  };
}

function sortError(detail: string): InvalidInput {
  return new InvalidInput('invalid_sort', detail, { scimType: 'invalidValue' });
}

/** RFC 7644 §3.4.2.3: a complex attribute must be sorted by a sub-attribute; a multi-valued one by its value. */
function sortablePath(path: ResolvedPath, sortBy: string): ResolvedPath {
  if (path.sub || path.attr.type !== 'complex') return path;
  const value = path.attr.multiValued ? findSubAttr(path.attr, 'value') : undefined;
  if (!value) throw sortError(`sortBy "${sortBy}" is complex: name one of its sub-attributes`);
  return { ...path, sub: value };
}

function sortExpression(target: Target | undefined, path: ResolvedPath): SqlFragment | undefined {
  if (target?.kind === 'column') return { sql: target.column.expr, bindings: [] };
  if (target?.kind !== 'attrs') return undefined;
  const { tenant, owner } = target;
  // The primary element's value if there is one, else the first element's (RFC 7644 §3.4.2.3).
  return {
    sql:
      `(SELECT sv.value_key FROM user_attrs sv LEFT JOIN user_attrs sp ON sp.tenant_id = sv.tenant_id AND sp.user_id = sv.user_id` +
      ` AND sp.attr = sv.attr AND sp.ord = sv.ord AND sp.sub = 'primary' AND sp.value_key = 'true'` +
      ` WHERE sv.tenant_id = ${tenant} AND sv.user_id = ${owner} AND sv.attr = ? AND sv.sub = ?` +
      ` ORDER BY CASE WHEN sp.ord IS NULL THEN 1 ELSE 0 END, sv.ord LIMIT 1)`,
    bindings: [target.attr, path.sub?.name ?? ''],
  };
}

/** A value held in a column, and how a literal becomes the binding it is compared with. */
interface Column {
  expr: string;
  text: boolean;
  nullable: boolean;
  bind(def: AttributeDef, literal: Literal): string | number;
}

const caseMapped = (_def: AttributeDef, v: Literal) => caseMappedKey(String(v));
const exact = (_def: AttributeDef, v: Literal) => String(v);
const flag = (def: AttributeDef, v: Literal) => (literalKey(def, v) === 'true' ? 1 : 0);

function textColumn(expr: string, bind: Column['bind'], nullable = false): Column {
  return { expr, text: true, nullable, bind };
}

/** Numeric columns are NOT NULL. */
function numberColumn(expr: string, bind: Column['bind']): Column {
  return { expr, text: false, nullable: false, bind };
}

/** Attributes with a column of their own, by canonical path; everything else of a user is in user_attrs. */
function resourceColumns(rt: ResourceType, a: string): Record<string, Column> {
  const common = {
    id: textColumn(`${a}.id`, exact),
    externalId: textColumn(`${a}.external_id`, exact, true),
    'meta.created': numberColumn(`${a}.created_at`, dateLiteral),
    'meta.lastModified': numberColumn(`${a}.updated_at`, dateLiteral),
  };
  return rt.name === 'User'
    ? { ...common, userName: textColumn(`${a}.user_name_key`, caseMapped), active: numberColumn(`${a}.active`, flag) }
    : { ...common, displayName: textColumn(`${a}.display_name_key`, caseMapped) };
}

/**
 * A multi-valued attribute kept as membership rows: a user's `groups` (only SCIM groups, as
 * they are shown) and a group's `members`. `columns` maps the filterable sub-attributes.
 */
interface Relation {
  from(n: number): string;
  where(n: number, tenant: string, owner: string): string;
  columns(n: number): Record<string, Column>;
}

const USER_GROUPS: Relation = {
  from: (n) =>
    `idp_group_members gm${n} JOIN idp_groups gg${n} ON gg${n}.tenant_id = gm${n}.tenant_id AND gg${n}.id = gm${n}.group_id`,
  where: (n, tenant, owner) =>
    `gm${n}.tenant_id = ${tenant} AND gm${n}.member_id = ${owner} AND gg${n}.source = 'scim'`,
  columns: (n) => ({
    value: textColumn(`gm${n}.group_id`, exact),
    display: textColumn(`gg${n}.display_name_key`, caseMapped),
  }),
};

const GROUP_MEMBERS: Relation = {
  from: (n) => `idp_group_members gm${n}`,
  where: (n, tenant, owner) => `gm${n}.tenant_id = ${tenant} AND gm${n}.group_id = ${owner}`,
  // member_type is 'User' or 'Group'; ASCII, so LOWER() agrees with caseMappedKey on both databases.
  columns: (n) => ({
    value: textColumn(`gm${n}.member_id`, exact),
    type: textColumn(`LOWER(gm${n}.member_type)`, caseMapped),
  }),
};

/** Where a resource's attribute lives. `tenant`/`owner` are the SQL that correlates to the resource row. */
type Target =
  | { kind: 'column'; column: Column }
  | { kind: 'constant'; value: string }
  | { kind: 'relation'; relation: Relation; tenant: string; owner: string }
  | { kind: 'attrs'; attr: string; tenant: string; owner: string };

/** Undefined for what cannot be filtered or sorted (password, meta.location, a group's members.display …). */
function targetOf(path: ResolvedPath, rt: ResourceType, a: string): Target | undefined {
  const name = canonicalPath(path, rt);
  const column = resourceColumns(rt, a)[name];
  if (column) return { kind: 'column', column };
  if (name === 'meta.resourceType') return { kind: 'constant', value: rt.name };
  const correlation = { tenant: `${a}.tenant_id`, owner: `${a}.id` };
  const core = path.schema === rt.schema.id;
  if (rt.name === 'Group') {
    return core && path.attr.name === 'members'
      ? { kind: 'relation', relation: GROUP_MEMBERS, ...correlation }
      : undefined;
  }
  if (path.schema === null || (core && path.attr.name === 'password')) return undefined;
  if (core && path.attr.name === 'groups') return { kind: 'relation', relation: USER_GROUPS, ...correlation };
  const container = containerKey(path, rt);
  return { kind: 'attrs', attr: container ? `${container}:${path.attr.name}` : path.attr.name, ...correlation };
}

/** How comparisons and presence tests are written where a filter's paths are resolved. */
interface Scope {
  compare(path: ResolvedPath, op: PositiveOp, literal: Literal): SqlFragment;
  present(path: ResolvedPath): SqlFragment;
  valuePath(path: ResolvedPath, filter: Filter): SqlFragment;
}

/** Walks the filter, numbering subqueries so that their aliases are unique within the statement. */
class Compiler {
  private n = 0;

  constructor(
    readonly rt: ResourceType,
    readonly alias: string,
  ) {}

  nextAlias(): number {
    return ++this.n;
  }

  compile(f: Filter, scope: Scope): SqlFragment {
    switch (f.kind) {
      case 'and':
      case 'or': {
        const left = this.compile(f.left, scope);
        const right = this.compile(f.right, scope);
        return {
          sql: `(${left.sql} ${f.kind.toUpperCase()} ${right.sql})`,
          bindings: [...left.bindings, ...right.bindings],
        };
      }
      case 'not':
        return negate(this.compile(f.filter, scope));
      case 'present':
        return scope.present(f.path);
      case 'valuePath':
        return scope.valuePath(f.path, f.filter);
      case 'compare':
        // eq null / ne null: the usual reading of "has no value" / "has a value".
        if (f.value === null)
          return f.op === 'ne'
            ? scope.present(f.path)
            : f.op === 'eq'
              ? negate(scope.present(f.path))
              : nullError(f.op);
        return f.op === 'ne' ? negate(scope.compare(f.path, 'eq', f.value)) : scope.compare(f.path, f.op, f.value);
    }
  }
}

function nullError(op: CompareOp): never {
  throw filterError(`null can only be compared with "eq" or "ne", not "${op}"`);
}

/** ` AND <cond>` inside a subquery, or nothing when the subquery's own conditions suffice. */
function andClause(f: SqlFragment): string {
  return f === TRUE ? '' : ` AND ${f.sql}`;
}

function negate(f: SqlFragment): SqlFragment {
  return { sql: `NOT (${f.sql})`, bindings: f.bindings };
}

function notFilterable(path: ResolvedPath, rt: ResourceType): never {
  throw filterError(`"${canonicalPath(path, rt)}" is not filterable`);
}

/** Top-level paths of a User or Group. */
class ResourceScope implements Scope {
  constructor(private readonly compiler: Compiler) {}

  private target(path: ResolvedPath): Target {
    return targetOf(path, this.compiler.rt, this.compiler.alias) ?? notFilterable(path, this.compiler.rt);
  }

  compare(path: ResolvedPath, op: PositiveOp, literal: Literal): SqlFragment {
    const def = path.sub ?? path.attr;
    const t = this.target(path);
    switch (t.kind) {
      case 'column':
        return columnCompare(t.column, def, op, literal);
      case 'constant':
        return compareKeys(op, valueKey(def, t.value), literalKey(def, literal)) ? TRUE : FALSE;
      case 'relation':
        return this.relationExists(t, (scope) => scope.compare(path, op, literal));
      case 'attrs':
        return this.attrsExists(t, path, (x) => keyCompare(`${x}.value_key`, op, literalKey(def, literal)));
    }
  }

  present(path: ResolvedPath): SqlFragment {
    const t = this.target(path);
    switch (t.kind) {
      case 'column':
        return columnPresent(t.column);
      case 'constant':
        return TRUE;
      case 'relation':
        return this.relationExists(t, (scope) => (path.sub ? scope.present(path) : TRUE));
      case 'attrs':
        return this.attrsExists(t, path, () => TRUE);
    }
  }

  valuePath(path: ResolvedPath, filter: Filter): SqlFragment {
    const t = this.target(path);
    if (t.kind === 'relation') return this.relationExists(t, (scope) => this.compiler.compile(filter, scope));
    if (t.kind !== 'attrs') return notFilterable(path, this.compiler.rt);
    // One row of the element is enough to stand for it; each inner term then looks for a row of
    // the same element (same ord), so `type eq "work" and value co "x"` cannot mix two emails.
    const o = `ua${this.compiler.nextAlias()}`;
    const inner = this.compiler.compile(filter, new ElementScope(this.compiler, o));
    return {
      sql: `EXISTS (SELECT 1 FROM user_attrs ${o} WHERE ${o}.tenant_id = ${t.tenant} AND ${o}.user_id = ${t.owner} AND ${o}.attr = ? AND ${inner.sql})`,
      bindings: [t.attr, ...inner.bindings],
    };
  }

  private relationExists(t: Extract<Target, { kind: 'relation' }>, cond: (scope: Scope) => SqlFragment): SqlFragment {
    const n = this.compiler.nextAlias();
    const inner = cond(new RowScope(t.relation, n, this.compiler.rt));
    const r = t.relation;
    return {
      sql: `EXISTS (SELECT 1 FROM ${r.from(n)} WHERE ${r.where(n, t.tenant, t.owner)}${andClause(inner)})`,
      bindings: inner.bindings,
    };
  }

  private attrsExists(
    t: Extract<Target, { kind: 'attrs' }>,
    path: ResolvedPath,
    cond: (alias: string) => SqlFragment,
  ): SqlFragment {
    const x = `ua${this.compiler.nextAlias()}`;
    // A complex attribute without sub-attribute (`name pr`) is present if any of its parts is.
    const sub = path.sub ? path.sub.name : path.attr.type === 'complex' ? undefined : '';
    const c = cond(x);
    return {
      sql:
        `EXISTS (SELECT 1 FROM user_attrs ${x} WHERE ${x}.tenant_id = ${t.tenant} AND ${x}.user_id = ${t.owner} AND ${x}.attr = ?` +
        `${sub === undefined ? '' : ` AND ${x}.sub = ?`}${andClause(c)})`,
      bindings: [t.attr, ...(sub === undefined ? [] : [sub]), ...c.bindings],
    };
  }
}

/** Inside `attr[...]` of a user_attrs attribute: terms about one element, the row aliased `o`. */
class ElementScope implements Scope {
  constructor(
    private readonly compiler: Compiler,
    private readonly o: string,
  ) {}

  compare(path: ResolvedPath, op: PositiveOp, literal: Literal): SqlFragment {
    return this.sameElement(path, (x) => keyCompare(`${x}.value_key`, op, literalKey(path.sub ?? path.attr, literal)));
  }

  present(path: ResolvedPath): SqlFragment {
    return this.sameElement(path, () => TRUE);
  }

  valuePath(path: ResolvedPath): SqlFragment {
    return notFilterable(path, this.compiler.rt);
  }

  private sameElement(path: ResolvedPath, cond: (alias: string) => SqlFragment): SqlFragment {
    const x = `ua${this.compiler.nextAlias()}`;
    const o = this.o;
    const c = cond(x);
    return {
      sql:
        `EXISTS (SELECT 1 FROM user_attrs ${x} WHERE ${x}.tenant_id = ${o}.tenant_id AND ${x}.user_id = ${o}.user_id` +
        ` AND ${x}.attr = ${o}.attr AND ${x}.ord = ${o}.ord AND ${x}.sub = ?${andClause(c)})`,
      bindings: [path.sub?.name ?? '', ...c.bindings],
    };
  }
}

/** Terms about one membership row: its columns stand for the element's sub-attributes. */
class RowScope implements Scope {
  private readonly columns: Record<string, Column>;

  constructor(
    relation: Relation,
    n: number,
    private readonly rt: ResourceType,
  ) {
    this.columns = relation.columns(n);
  }

  private column(path: ResolvedPath): Column {
    return this.columns[path.sub?.name ?? ''] ?? notFilterable(path, this.rt);
  }

  compare(path: ResolvedPath, op: PositiveOp, literal: Literal): SqlFragment {
    return columnCompare(this.column(path), path.sub ?? path.attr, op, literal);
  }

  present(path: ResolvedPath): SqlFragment {
    return columnPresent(this.column(path));
  }

  valuePath(path: ResolvedPath): SqlFragment {
    return notFilterable(path, this.rt);
  }
}

function columnCompare(column: Column, def: AttributeDef, op: PositiveOp, literal: Literal): SqlFragment {
  const f = keyCompare(column.expr, op, column.bind(def, literal));
  return column.nullable ? { sql: `(${column.expr} IS NOT NULL AND ${f.sql})`, bindings: f.bindings } : f;
}

/** Numeric columns (active, timestamps) are never null; text ones count "" as absent (RFC 7643 §2.5). */
function columnPresent(column: Column): SqlFragment {
  return column.text ? { sql: `(${column.expr} IS NOT NULL AND ${column.expr} <> '')`, bindings: [] } : TRUE;
}

function keyCompare(expr: string, op: PositiveOp, key: string | number): SqlFragment {
  if (op === 'co' || op === 'sw' || op === 'ew') {
    const v = escapeLike(String(key));
    const pattern = op === 'co' ? `%${v}%` : op === 'sw' ? `${v}%` : `%${v}`;
    return { sql: `${expr} LIKE ? ESCAPE '!'`, bindings: [pattern] };
  }
  return { sql: `${expr} ${SQL_OPS[op]} ?`, bindings: [key] };
}
