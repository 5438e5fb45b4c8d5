/**
 * A per-process cache bounded by bytes, not only entries: what it holds comes from identity
 * providers a tenant admin points Roster at, so one entry can be any size. Each entry is
 * measured when stored and again when read (a discovery entry grows once its JWKS is fetched);
 * an entry larger than `maxEntryBytes` is not kept, and the least recently used ones go first
 * when the total passes `maxBytes`. Entries expire after `ttlMs`.
 */
export class ByteBoundedCache<V> {
  private readonly map = new Map<string, { value: V; at: number; bytes: number }>();
  private total = 0;

  constructor(
    private readonly sizeOf: (value: V) => number,
    private readonly opts: { maxBytes: number; maxEntryBytes: number; ttlMs: number; now?: () => number },
  ) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.remove(key);
    if (this.now() - e.at >= this.opts.ttlMs) return undefined;
    this.put(key, e.value, e.at);
    return e.value;
  }

  set(key: string, value: V): void {
    this.remove(key);
    this.put(key, value, this.now());
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private put(key: string, value: V, at: number): void {
    // Strings take two bytes per unit; the rest covers the Map entry and the record.
    const bytes = 2 * key.length + this.sizeOf(value) + 128;
    if (bytes > this.opts.maxEntryBytes) return;
    this.map.set(key, { value, at, bytes });
    this.total += bytes;
    while (this.total > this.opts.maxBytes) this.remove(this.map.keys().next().value!);
  }

  private remove(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.map.delete(key);
    this.total -= e.bytes;
  }
}
