import type { Knex } from 'knex';
import { InvalidInput } from '../errors.js';
import { groupFromRow, type IdpGroup } from '../directory/groups.js';
import { userFromRow, type User } from '../directory/users.js';
import { parseFilter } from './filter/parser.js';
import { filterToSql, sortToSql } from './filter/to-sql.js';
import type { ListParams } from './list-params.js';
import { GROUP_RT, USER_RT, type ResourceType } from '../directory/model/registry.js';
import { SeekCache } from './seek-cache.js';

export interface Page<T> {
  total: number;
  items: T[];
}

const TABLE: Record<ResourceType['name'], string> = { User: 'users', Group: 'idp_groups' };

function base(db: Knex, rt: ResourceType, tenantId: string, filterText: string | undefined): Knex.QueryBuilder {
  const q = db(`${TABLE[rt.name]} as r`).where('r.tenant_id', tenantId);
  if (rt.name === 'Group') q.andWhere('r.source', 'scim');
  if (filterText !== undefined && filterText.trim() !== '') {
    const { sql, bindings } = filterToSql(parseFilter(filterText, rt), rt);
    q.andWhereRaw(sql, bindings);
  }
  return q;
}

/**
 * Runs SCIM list statements under a time limit on MySQL (the MAX_EXECUTION_TIME hint) and
 * MariaDB (SET STATEMENT max_statement_time), so one costly filter cannot hold a connection
 * for long; past it the request answers 400 tooMany. SQLite cannot interrupt a statement
 * (the bundled build omits the progress callback): there the filter limits bound the cost.
 */
export class StatementLimit {
  private server?: Promise<'mariadb' | 'mysql' | undefined>;

  constructor(
    private readonly db: Knex,
    private readonly ms: number,
  ) {}

  private kind(): Promise<'mariadb' | 'mysql' | undefined> {
    const client = (this.db.client as { config: { client: string } }).config.client;
    if (client !== 'mysql2' || this.ms <= 0) return Promise.resolve(undefined);
    this.server ??= this.db
      .raw('select version() as v')
      .then(([rows]: [{ v: string }[]]) => (/mariadb/i.test(rows[0]!.v) ? 'mariadb' : 'mysql'));
    return this.server;
  }

  async rows(q: Knex.QueryBuilder): Promise<Record<string, unknown>[]> {
    const server = await this.kind();
    try {
      if (server === 'mariadb') {
        const { sql, bindings } = q.toSQL().toNative();
        const [rows] = await this.db.raw(
          `SET STATEMENT max_statement_time = ${this.ms / 1000} FOR ${sql}`,
          bindings as Knex.RawBinding[],
        );
        return rows as Record<string, unknown>[];
      }
      if (server === 'mysql') q.hintComment(`MAX_EXECUTION_TIME(${this.ms})`);
      return (await q) as Record<string, unknown>[];
    } catch (err) {
      // ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL).
      if ([1969, 3024].includes((err as { errno?: number }).errno ?? 0)) {
        throw new InvalidInput(
          'list_too_costly',
          `the list took longer than ${this.ms} ms to compute; narrow the filter`,
          { scimType: 'tooMany', cause: err },
        );
      }
      throw err;
    }
  }
}

/**
 * The total of a list. Every user holds a seat, and the tenant row keeps the seat count in the
 * same transactions that create and delete users, so an unfiltered user list reads one row
 * instead of counting a hundred thousand on every page (InnoDB has no cheap COUNT(*)).
 */
async function countOf(
  db: Knex,
  limit: StatementLimit,
  rt: ResourceType,
  tenantId: string,
  filterText: string | undefined,
): Promise<number> {
  if (rt.name === 'User' && (filterText === undefined || filterText.trim() === '')) {
    const row = await db('tenants').where({ id: tenantId }).select('seats_used').first();
    return Number(row?.seats_used ?? 0);
  }
  const [row] = await limit.rows(base(db, rt, tenantId, filterText).count({ n: '*' }));
  return Number(row?.n ?? 0);
}

/**
 * One page of a filtered, sorted list, and the total. The filter becomes SQL with bound values;
 * nothing is evaluated in memory over the tenant. Order is stable (ties broken by id).
 */
async function listPage(
  db: Knex,
  limit: StatementLimit,
  cache: SeekCache,
  rt: ResourceType,
  tenantId: string,
  p: ListParams,
): Promise<Page<Record<string, unknown>>> {
  const total = await countOf(db, limit, rt, tenantId, p.filter);
  if (p.count === 0 || p.startIndex > total) return { total, items: [] };
  const q = base(db, rt, tenantId, p.filter).select('r.*').limit(p.count);
  const seekable = p.sortBy === undefined;
  const key = SeekCache.key(rt.name, tenantId, p.filter, p.startIndex);
  if (p.sortBy !== undefined) {
    const { sql, bindings } = sortToSql(p.sortBy, rt, p.sortOrder);
    q.orderByRaw(`${sql}, r.id ${p.sortOrder === 'descending' ? 'desc' : 'asc'}`, bindings);
    q.offset(p.startIndex - 1);
  } else {
    q.orderBy('r.id', 'asc');
    const after = p.startIndex > 1 ? cache.get(key) : undefined;
    if (after !== undefined) q.andWhere('r.id', '>', after);
    else q.offset(p.startIndex - 1);
  }
  const rows = await limit.rows(q);
  if (seekable && rows.length)
    cache.set(
      SeekCache.key(rt.name, tenantId, p.filter, p.startIndex + rows.length),
      String(rows[rows.length - 1]!.id),
    );
  return { total, items: rows };
}

export class DirectoryQueries {
  private readonly cache = new SeekCache();
  private readonly limit: StatementLimit;
  constructor(
    private readonly db: Knex,
    statementTimeoutMs: number,
  ) {
    this.limit = new StatementLimit(db, statementTimeoutMs);
  }

  async users(tenantId: string, p: ListParams): Promise<Page<User>> {
    const page = await listPage(this.db, this.limit, this.cache, USER_RT, tenantId, p);
    return { total: page.total, items: page.items.map(userFromRow) };
  }

  async groups(tenantId: string, p: ListParams): Promise<Page<IdpGroup>> {
    const page = await listPage(this.db, this.limit, this.cache, GROUP_RT, tenantId, p);
    return { total: page.total, items: page.items.map(groupFromRow) };
  }
}
