/** Row value conversions that differ between MySQL/MariaDB and SQLite. */

/** MariaDB and SQLite hand JSON columns back as text, MySQL as objects. */
export function parseJson<T>(value: unknown, fallback: T): T {
  if (value === null || value === undefined) return fallback;
  if (typeof value === 'string') return value === '' ? fallback : (JSON.parse(value) as T);
  if (Buffer.isBuffer(value)) return JSON.parse(value.toString('utf8')) as T;
  return value as T;
}

export function toJson(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

/** Booleans come back as 0/1 from both dialects. */
export function toBool(value: unknown): boolean {
  return value === true || value === 1 || value === '1';
}

/** Instants are stored as UTC epoch milliseconds; mysql2 may return BIGINT as string. */
export function toMs(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'number' ? value : Number(value);
}

export function isoOrNull(value: unknown): string | null {
  const ms = toMs(value);
  return ms === null ? null : new Date(ms).toISOString();
}
