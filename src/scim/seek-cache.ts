import { createHash } from 'node:crypto';

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
  private readonly map = new Map<string, { lastId: string; at: number }>();
  private bytes = 0;

  constructor(
    private readonly maxBytes = 2 * 1024 * 1024,
    private readonly ttlMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** A fixed-size key for a tenant's position in one list. */
  static key(resourceType: string, tenantId: string, filter: string | undefined, startIndex: number): string {
    return createHash('sha256')
      .update(JSON.stringify([resourceType, tenantId, filter ?? null, startIndex]))
      .digest('base64url');
  }

  /** What an entry costs in memory: both strings (two bytes per unit) and the Map's overhead. */
  private static size(key: string, lastId: string): number {
    return 2 * (key.length + lastId.length) + 96;
  }

  get(key: string): string | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.delete(key);
    if (this.now() - e.at > this.ttlMs) return undefined;
    this.map.set(key, e);
    this.bytes += SeekCache.size(key, e.lastId);
    return e.lastId;
  }

  set(key: string, lastId: string): void {
    this.delete(key);
    this.map.set(key, { lastId, at: this.now() });
    this.bytes += SeekCache.size(key, lastId);
    while (this.bytes > this.maxBytes) this.delete(this.map.keys().next().value!);
  }

  private delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.map.delete(key);
    this.bytes -= SeekCache.size(key, e.lastId);
  }
}
