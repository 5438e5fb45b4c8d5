import assert from 'node:assert/strict';
import { buildCatalogue, CatalogueError, keyOfLabel, type Area } from '../../../src/access/catalogue.js';
import { defaultCatalogue } from '../../../src/access/catalogue-default.js';

function keys(tree: Area[]): string[] {
  return tree.flatMap((a) => [a.key, ...keys(a.children)]);
}

describe('area catalogue', () => {
  it('derives keys from labels: lowercase, runs of other characters as one underscore', () => {
    assert.equal(keyOfLabel('Real-time config'), 'real_time_config');
    assert.equal(keyOfLabel('A/B testing'), 'a_b_testing');
    assert.equal(keyOfLabel('Smart Analyst'), 'smart_analyst');
    assert.equal(keyOfLabel('  API keys! '), 'api_keys');
  });

  it("holds seed 002's areas and sub-sections with full keys, manage only on Account and Integrations", () => {
    const tree = buildCatalogue(defaultCatalogue);
    assert.deepEqual(
      tree.map((a) => a.key),
      [
        'analytics',
        'behavior',
        'knowledge',
        'flows',
        'tools',
        'testing',
        'real_time_config',
        'voice',
        'messaging',
        'integrations',
        'deployments',
        'widgets',
        'account',
      ],
    );
    const all = keys(tree);
    for (const k of [
      'analytics.smart_analyst',
      'knowledge.faqs',
      'deployments.a_b_testing',
      'voice.audio_library',
      'messaging.sms',
      'account.api_keys',
      'account.call_data',
    ]) {
      assert.ok(all.includes(k), k);
    }
    assert.equal(all.length, 13 + 8 + 4 + 3 + 5 + 2 + 4 + 5);
    const withManage = (t: Area[]): string[] =>
      t.flatMap((a) => [...(a.actions.includes('manage') ? [a.key] : []), ...withManage(a.children)]);
    assert.deepEqual(withManage(tree), [
      'integrations',
      'account',
      'account.settings',
      'account.users',
      'account.api_keys',
      'account.call_data',
      'account.legal',
    ]);
    assert.deepEqual(tree[0]!.actions, ['view', 'create', 'edit', 'delete']);
  });

  it('refuses a malformed catalogue listing every problem', () => {
    assert.throws(
      () =>
        buildCatalogue([
          { label: 'Sales' },
          { label: 'sales!' },
          { label: '---' },
          { label: 'X', children: [{ label: 'Y', colour: 'red' }] },
        ]),
      (err: unknown) => err instanceof CatalogueError && /colour|additional/.test(err.message),
    );
    assert.throws(
      () => buildCatalogue([{ label: 'Sales' }, { label: 'sales!' }, { label: '---' }]),
      (err: unknown) =>
        err instanceof CatalogueError && err.problems.length === 2 && /"sales"/.test(err.problems.join()),
    );
    assert.throws(() => buildCatalogue([]), CatalogueError);
  });
});
