import assert from 'node:assert/strict';
import { SeekCache } from '../../../src/scim/seek-cache.js';

describe('SCIM seek cache', () => {
  it('keys are fixed-size hashes: no filter text kept, one key per tenant', () => {
    const long = `userName pr or userName eq "${'x'.repeat(9900)}"`;
    const a = SeekCache.key('User', 'tenant-a', long, 101);
    assert.equal(a.length, SeekCache.key('User', 'tenant-a', 'title pr', 101).length);
    assert.ok(a.length <= 64);
    assert.ok(!a.includes('userName') && !a.includes('xxxx'));
    assert.notEqual(a, SeekCache.key('User', 'tenant-b', long, 101));
    assert.notEqual(a, SeekCache.key('Group', 'tenant-a', long, 101));
    assert.notEqual(a, SeekCache.key('User', 'tenant-a', long, 201));
    assert.notEqual(SeekCache.key('User', 't', undefined, 11), SeekCache.key('User', 't', '', 11));
  });

  it('is bounded in bytes, evicting the least recently used entries first', () => {
    const cache = new SeekCache(4096);
    const big = (i: number) => `${i}`.padEnd(500, '-');
    for (let i = 0; i < 20; i++) cache.set(`k${i}`, big(i));
    // Each entry costs about 1,100 bytes, so three fit in 4 KiB.
    assert.equal(cache.get('k16'), undefined);
    assert.equal(cache.get('k17'), big(17));
    cache.set('k20', big(20));
    assert.equal(cache.get('k18'), undefined, 'k18 was the least recently used');
    assert.equal(cache.get('k17'), big(17));
    assert.equal(cache.get('k20'), big(20));
  });

  it('forgets entries older than its time to live', () => {
    let now = 1_000_000;
    const cache = new SeekCache(1024 * 1024, 60_000, () => now);
    cache.set('k', 'id-1');
    now += 59_000;
    assert.equal(cache.get('k'), 'id-1');
    now += 61_000;
    assert.equal(cache.get('k'), undefined);
    assert.equal(cache.get('k'), undefined);
  });
});
