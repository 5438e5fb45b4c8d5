import assert from 'node:assert/strict';
import fs from 'node:fs';
import { InvalidInput } from '../../../src/errors.js';
import type { Filter } from '../../../src/scim/filter/ast.js';
import {
  MAX_FILTER_DEPTH,
  MAX_FILTER_LENGTH,
  MAX_FILTER_NODES,
  MAX_FILTER_SUBSTRING_TERMS,
  parseDateTime,
  parseFilter,
} from '../../../src/scim/filter/parser.js';
import { filterToSql, sortToSql } from '../../../src/scim/filter/to-sql.js';
import { canonicalPath, GROUP_RT, USER_RT, type ResourceType } from '../../../src/directory/model/registry.js';

interface Case {
  why?: string;
  rt?: 'User' | 'Group';
  filter: string;
}

const cases = JSON.parse(fs.readFileSync(new URL('./filter.cases.json', import.meta.url), 'utf8')) as {
  parse: (Case & { ast: unknown })[];
  errors: (Case & { detail: string })[];
  sql: (Case & { sql: string; bindings: unknown[] })[];
  sqlErrors: (Case & { detail: string })[];
  sortErrors: { rt?: 'User' | 'Group'; sortBy: string; detail: string }[];
};

const rtOf = (c: { rt?: 'User' | 'Group' }): ResourceType => (c.rt === 'Group' ? GROUP_RT : USER_RT);

/** The cases file's compact AST notation. */
function compact(f: Filter, rt: ResourceType): unknown {
  switch (f.kind) {
    case 'compare':
      return [f.op, canonicalPath(f.path, rt), f.value];
    case 'present':
      return ['pr', canonicalPath(f.path, rt)];
    case 'and':
    case 'or':
      return [f.kind, compact(f.left, rt), compact(f.right, rt)];
    case 'not':
      return ['not', compact(f.filter, rt)];
    case 'valuePath':
      return ['[]', canonicalPath(f.path, rt), compact(f.filter, rt)];
  }
}

function assertInvalid(fn: () => unknown, code: string, scimType: string, detail: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidInput, `expected InvalidInput, got ${String(err)}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, code);
    assert.equal(err.extra.scimType, scimType);
    assert.ok(err.message.includes(detail), `detail ${JSON.stringify(err.message)} lacks ${JSON.stringify(detail)}`);
    return true;
  });
}

const label = (c: Case) =>
  `${c.rt === 'Group' ? '[Group] ' : ''}${JSON.stringify(c.filter)}${c.why ? ` (${c.why})` : ''}`;

describe('SCIM filter parser', () => {
  describe('parses', () => {
    for (const c of cases.parse) {
      it(label(c), () => {
        assert.deepEqual(compact(parseFilter(c.filter, rtOf(c)), rtOf(c)), c.ast);
      });
    }
  });

  describe('rejects with 400 invalidFilter', () => {
    for (const c of cases.errors) {
      it(`${label(c)} → ${c.detail}`, () => {
        assertInvalid(() => parseFilter(c.filter, rtOf(c)), 'invalid_filter', 'invalidFilter', c.detail);
      });
    }
  });

  it('resolves paths inside brackets to the bracketed attribute with sub set', () => {
    const f = parseFilter('emails[type eq "work"]', USER_RT);
    assert.equal(f.kind, 'valuePath');
    if (f.kind !== 'valuePath' || f.filter.kind !== 'compare') return assert.fail('unexpected shape');
    assert.equal(f.path.attr.name, 'emails');
    assert.equal(f.path.sub, undefined);
    assert.equal(f.filter.path.attr.name, 'emails');
    assert.equal(f.filter.path.sub?.name, 'type');
  });

  it(`refuses nesting deeper than ${MAX_FILTER_DEPTH} levels`, () => {
    const ok = `${'('.repeat(MAX_FILTER_DEPTH)}title pr${')'.repeat(MAX_FILTER_DEPTH)}`;
    assert.deepEqual(compact(parseFilter(ok, USER_RT), USER_RT), ['pr', 'title']);
    const deep = `${'('.repeat(MAX_FILTER_DEPTH + 1)}title pr${')'.repeat(MAX_FILTER_DEPTH + 1)}`;
    assertInvalid(
      () => parseFilter(deep, USER_RT),
      'invalid_filter',
      'invalidFilter',
      `deeper than ${MAX_FILTER_DEPTH} levels at position ${MAX_FILTER_DEPTH}`,
    );
    assertInvalid(
      () => parseFilter(`${'not '.repeat(1000)}title pr`, USER_RT),
      'invalid_filter',
      'invalidFilter',
      'deeper than',
    );
  });

  it(`accepts a hundred or-ed ids but not more than ${MAX_FILTER_NODES} terms`, () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `id eq "${i}"`).join(' or ');
    assert.equal(parseFilter(ids(100), USER_RT).kind, 'or');
    assertInvalid(
      () => parseFilter(ids(101), USER_RT),
      'invalid_filter',
      'invalidFilter',
      `more than ${MAX_FILTER_NODES} terms`,
    );
  });

  it(`refuses filters longer than ${MAX_FILTER_LENGTH} characters`, () => {
    const long = `title eq "${'x'.repeat(MAX_FILTER_LENGTH)}"`;
    assertInvalid(
      () => parseFilter(long, USER_RT),
      'invalid_filter',
      'invalidFilter',
      `longer than ${MAX_FILTER_LENGTH} characters`,
    );
  });

  it(`refuses more than ${MAX_FILTER_SUBSTRING_TERMS} co/sw/ew comparisons, which no index serves`, () => {
    const ops = ['co', 'sw', 'ew'];
    const subs = (n: number) => Array.from({ length: n }, (_, i) => `title ${ops[i % 3]} "${i}"`).join(' or ');
    assert.equal(parseFilter(`${subs(MAX_FILTER_SUBSTRING_TERMS)} or id eq "x"`, USER_RT).kind, 'or');
    const detail = `more than ${MAX_FILTER_SUBSTRING_TERMS} "co", "sw" or "ew" comparisons`;
    assertInvalid(
      () => parseFilter(subs(MAX_FILTER_SUBSTRING_TERMS + 1), USER_RT),
      'invalid_filter',
      'invalidFilter',
      detail,
    );
    assertInvalid(
      () => parseFilter(`emails[${subs(MAX_FILTER_SUBSTRING_TERMS + 1).replaceAll('title', 'value')}]`, USER_RT),
      'invalid_filter',
      'invalidFilter',
      detail,
    );
  });
});

describe('SCIM dateTime literals', () => {
  const cases: [string, string | undefined][] = [
    ['2015-10-10T14:38:21.8617979-07:00', '2015-10-10T21:38:21.861Z'],
    ['2011-05-13T04:42:34Z', '2011-05-13T04:42:34.000Z'],
    ['2011-05-13T04:42:34+0130', '2011-05-13T03:12:34.000Z'],
    ['2011-05-13t04:42:34z', '2011-05-13T04:42:34.000Z'],
    ['2011-05-13T04:42', '2011-05-13T04:42:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['2023-02-29', undefined],
    ['2011-05-13T24:00:00Z', undefined],
    ['13 May 2011', undefined],
    ['1305261754000', undefined],
  ];
  for (const [text, iso] of cases) {
    it(`${text} → ${iso ?? 'not a date'}`, () => {
      const ms = parseDateTime(text);
      assert.equal(ms === undefined ? undefined : new Date(ms).toISOString(), iso);
    });
  }
});

describe('SCIM filter → SQL', () => {
  for (const c of cases.sql) {
    it(label(c), () => {
      assert.deepEqual(filterToSql(parseFilter(c.filter, rtOf(c)), rtOf(c)), { sql: c.sql, bindings: c.bindings });
    });
  }

  for (const c of cases.sqlErrors) {
    it(`rejects ${label(c)} → ${c.detail}`, () => {
      assertInvalid(
        () => filterToSql(parseFilter(c.filter, rtOf(c)), rtOf(c)),
        'invalid_filter',
        'invalidFilter',
        c.detail,
      );
    });
  }

  it('gives every subquery its own alias and uses the given outer alias', () => {
    const { sql } = filterToSql(
      parseFilter('emails[type eq "work" and value co "x"] or name.givenName pr or groups eq "g"', USER_RT),
      USER_RT,
      'u',
    );
    assert.deepEqual(
      sql.match(/\b(ua|gm|gg)\d+(?= )/g)?.filter((a, i, all) => all.indexOf(a) === i),
      ['ua1', 'ua2', 'ua3', 'ua4', 'gm5', 'gg5'],
    );
    assert.ok(!/\br\./.test(sql));
    assert.ok(sql.includes('u.tenant_id') && sql.includes('u.id'));
  });

  it('binds every literal: no quote of user input reaches the SQL text', () => {
    const evil = `x'); DROP TABLE users; --`;
    for (const filter of [
      `userName eq "${evil}"`,
      `title co "${evil}"`,
      `emails[value sw "${evil}"]`,
      `groups.display eq "${evil}"`,
    ]) {
      const { sql, bindings } = filterToSql(parseFilter(filter, USER_RT), USER_RT);
      assert.ok(!sql.includes('DROP'), sql);
      assert.ok(
        bindings.some((b) => String(b).includes('drop table')),
        filter,
      );
    }
  });

  it('rejects a hand-built comparison of a date with a non-date', () => {
    const path = parseFilter('meta.created pr', USER_RT);
    if (path.kind !== 'present') return assert.fail('unexpected shape');
    const f: Filter = { kind: 'compare', path: path.path, op: 'gt', value: 'soon' };
    assertInvalid(
      () => filterToSql(f, USER_RT),
      'invalid_filter',
      'invalidFilter',
      '"created" is a dateTime: "soon" is not a date',
    );
  });
});

describe('SCIM sortBy → SQL', () => {
  it('sorts a column, missing values last when ascending and first when descending', () => {
    assert.deepEqual(sortToSql('userName', USER_RT), {
      sql: 'CASE WHEN r.user_name_key IS NULL THEN 1 ELSE 0 END ASC, r.user_name_key ASC',
      bindings: [],
    });
    assert.deepEqual(sortToSql('externalId', GROUP_RT, 'descending', 'g'), {
      sql: 'CASE WHEN g.external_id IS NULL THEN 1 ELSE 0 END DESC, g.external_id DESC',
      bindings: [],
    });
  });

  it('sorts a multi-valued attribute by its value sub-attribute, names in any case', () => {
    assert.deepEqual(sortToSql('EMAILS', USER_RT).bindings, ['emails', 'value', 'emails', 'value']);
    assert.deepEqual(sortToSql('name.FamilyName', USER_RT).bindings, ['name', 'familyName', 'name', 'familyName']);
  });

  for (const c of cases.sortErrors) {
    it(`rejects sortBy ${JSON.stringify(c.sortBy)}${c.rt === 'Group' ? ' on Groups' : ''} with 400 invalidValue`, () => {
      assertInvalid(() => sortToSql(c.sortBy, rtOf(c)), 'invalid_sort', 'invalidValue', c.detail);
    });
  }
});
