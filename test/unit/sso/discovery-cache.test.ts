import assert from 'node:assert/strict';
import { ByteBoundedCache } from '../../../src/sso/oidc/discovery-cache.js';

describe('ByteBoundedCache', () => {
  const make = (now = () => 0) =>
    new ByteBoundedCache<string>((v) => 2 * v.length, { maxBytes: 10_000, maxEntryBytes: 4_000, ttlMs: 1000, now });

  it('holds entries while their bytes fit, evicting the least recently used first', () => {
    const c = make();
    for (const k of ['a', 'b', 'c']) c.set(k, 'x'.repeat(1500));
    assert.equal(c.size, 3);
    assert.ok(c.bytes <= 10_000);
    assert.equal(c.get('a'), 'x'.repeat(1500));
    c.set('d', 'x'.repeat(1500));
    assert.equal(c.get('b'), undefined, 'b was the least recently used');
    assert.ok(c.get('a') && c.get('c') && c.get('d'));
    assert.ok(c.bytes <= 10_000, `${c.bytes} bytes`);
  });

  it('keeps no entry larger than maxEntryBytes, and many small ones stay within maxBytes', () => {
    const c = make();
    c.set('big', 'x'.repeat(2500));
    assert.equal(c.get('big'), undefined);
    assert.equal(c.bytes, 0);
    for (let i = 0; i < 1000; i++) c.set(`k${i}`, 'x'.repeat(100));
    assert.ok(c.bytes <= 10_000 && c.size < 1000, `${c.size} entries, ${c.bytes} bytes`);
  });

  it('measures an entry again when it is read, and drops expired ones', () => {
    let now = 0;
    const box = { v: 'x'.repeat(100) };
    const c = new ByteBoundedCache<typeof box>((b) => 2 * b.v.length, {
      maxBytes: 10_000,
      maxEntryBytes: 4_000,
      ttlMs: 1000,
      now: () => now,
    });
    c.set('k', box);
    const before = c.bytes;
    box.v = 'x'.repeat(1000);
    assert.equal(c.get('k'), box);
    assert.equal(c.bytes, before + 1800);
    box.v = 'x'.repeat(3000);
    assert.equal(c.get('k'), box, 'the read that finds it too large still answers');
    assert.equal(c.get('k'), undefined, 'grown past maxEntryBytes, it is no longer kept');
    c.set('t', box);
    box.v = '';
    c.set('t', box);
    now = 1000;
    assert.equal(c.get('t'), undefined);
    assert.equal(c.bytes, 0);
  });
});
