import assert from 'node:assert/strict';
import { globMatcher, matcher, type MatchableGroup, type RuleMatch } from '../../../src/mapping/rules.js';

const group = (displayName: string): MatchableGroup => ({ id: 'g1', source: 'scim', externalId: 'Ext-1', displayName });
const glob = (value: string, field: RuleMatch['field'] = 'displayName'): RuleMatch => ({
  source: 'any',
  field,
  operator: 'glob',
  value,
});

/** What globs meant when they were regular expressions: the reference the matcher must agree with. */
function reference(pattern: string, text: string): boolean {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's').test(text);
}

describe('mapping-rule globs', () => {
  it('answers a pattern of many stars against a 200-character name at once', () => {
    const started = performance.now();
    const hostile = glob('*a*a*a*a*a*a*a*a*a*a*a*a*b');
    assert.equal(matcher(hostile)(group('a'.repeat(200))), false);
    assert.equal(matcher(hostile)(group(`${'a'.repeat(199)}b`)), true);
    assert.equal(globMatcher('*-*-*-*-*-*-*-*-admins')('-'.repeat(255)), false);
    assert.ok(performance.now() - started < 100, `took ${Math.round(performance.now() - started)} ms`);
  });

  it('keeps the meaning globs had: literal punctuation, ? as one character, * as any run including none', () => {
    const cases: [string, string, boolean][] = [
      ['team-*', 'team-', true],
      ['team-*', 'team', false],
      ['*', '', true],
      ['?', '', false],
      ['a?c', 'abc', true],
      ['a?c', 'ac', false],
      ['a.c', 'abc', false],
      ['a.c', 'a.c', true],
      ['(x)+[y]', '(x)+[y]', true],
      ['a\\*', 'a\\bc', true],
      ['**a**', 'xay', true],
      ['*ab', 'aab', true],
      ['a*b*c', 'a\nb\nc', true],
    ];
    for (const [p, t, want] of cases) {
      assert.equal(globMatcher(p)(t), want, `${p} vs ${JSON.stringify(t)}`);
      assert.equal(reference(p, t), want, `reference: ${p} vs ${JSON.stringify(t)}`);
    }
  });

  it('agrees with the former regular expressions on random short patterns', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const pick = (alphabet: string, max: number) =>
      Array.from({ length: Math.floor(next() * max) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
    for (let n = 0; n < 5000; n++) {
      const p = pick('ab*?.', 7);
      const t = pick('ab.', 9);
      assert.equal(globMatcher(p)(t), reference(p, t), `${p} vs ${t}`);
    }
  });

  it('folds case and Unicode form on display names only', () => {
    assert.equal(matcher(glob('TEAM-*-CORE'))(group('team-platform-core')), true);
    assert.equal(matcher(glob('caf\u00e9*'))(group('Cafe\u0301 crew')), true);
    assert.equal(matcher(glob('ext-*', 'externalId'))(group('x')), false);
    assert.equal(matcher(glob('Ext-*', 'externalId'))(group('x')), true);
  });
});
