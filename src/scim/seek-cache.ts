/**
 * SCIM pages by position (startIndex), which as SQL OFFSET costs more the deeper the page.
 * IdPs page forward one page at a time, so after serving a page Roster remembers the id that
 * ends it; a request for the next position then seeks past that id through the primary key
 * instead of counting rows. Per process and bounded: a miss (another process, an evicted
 * entry) falls back to OFFSET, which gives the same rows. No access decision reads this.
 */
export class SeekCache {
  private readonly map = new Map<string, string>();
  constructor(private readonly capacity = 10_000) {}

  static key(parts: (string | number | undefined)[]): string {
    return parts.map((p) => String(p ?? '')).join('\u0000');
  }

  get(key: string): string | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, lastId: string): void {
    this.map.delete(key);
    this.map.set(key, lastId);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }
}
