import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * SCIM pages by position (startIndex), which as SQL OFFSET costs more the deeper the page.
 * IdPs page forward one page at a time, so after serving a page Roster remembers the id that
 * ends it; a request for the next position then seeks past that id through the primary key
 * instead of counting rows. Per process and bounded; a miss (another process, an evicted or
 * expired entry) falls back to OFFSET. No access decision reads this.
 *
 * What a seek returns: the rows after the last row of the page that ended at this position,
 * as they are now. While nothing before that row is deleted, that is exactly what OFFSET
 * returns (ids are UUIDv7, so new rows sort last). After a deletion before it, the two
 * differ: OFFSET skips one row per deletion, the seek does not. A client paging forward one
 * page at a time therefore sees no row twice and skips none, but may stop before the last
 * rows, because totalResults shrinks by the deletions and it stops when startIndex passes it.
 * A client that changes its page size mid-walk may be served an entry another walk wrote and
 * see a row twice; entries expire after `ttlMs` to bound that.
 *
 * Keys are hashes, so the cache holds no filter text (which carries user data) and its size
 * does not depend on the filters sent; each key covers the tenant, so no entry serves another
 * tenant.
 */
export class SeekCache {
  private readonly cache: LRUCache<string, string>;

  constructor(maxBytes = 2 * 1024 * 1024, ttlMs = 10 * 60_000, now: () => number = Date.now) {
    this.cache = new LRUCache<string, string>({
      maxSize: maxBytes,
      // Both strings at two bytes per unit, and the entry's own overhead.
      sizeCalculation: (lastId, key) => 2 * (key.length + lastId.length) + 96,
      ttl: ttlMs,
      // Read the clock at every check (a test moves it between two calls in one tick).
      ttlResolution: 0,
      perf: { now },
    });
  }

  /** A fixed-size key for a tenant's position in one list. */
  static key(resourceType: string, tenantId: string, filter: string | undefined, startIndex: number): string {
    return createHash('sha256')
      .update(JSON.stringify([resourceType, tenantId, filter ?? null, startIndex]))
      .digest('base64url');
  }

  get(key: string): string | undefined {
    return this.cache.get(key);
  }

  set(key: string, lastId: string): void {
    this.cache.set(key, lastId);
  }
}
