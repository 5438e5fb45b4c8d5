import type { Knex } from 'knex';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { caseMappedKey } from './model/value-key.js';
import { userFromRow, type User, type UserStatus } from './users.js';

export interface UserListQuery {
  email?: string;
  status?: UserStatus;
  role?: User['role'];
  templateId?: string;
  source?: User['source'];
  sort: 'createdAt' | 'email' | 'lastLoginAt';
  order: 'asc' | 'desc';
  limit: number;
  cursor?: string;
}

// Nullable columns sort through a non-null expression so the keyset comparison stays total.
const SORT_SQL: Record<UserListQuery['sort'], string> = {
  createdAt: 'created_at',
  email: "COALESCE(email_key, '')",
  lastLoginAt: 'COALESCE(last_login_at, 0)',
};

/** One page of a tenant's users, filtered and sorted, by keyset (cost independent of depth). */
export async function listUsers(
  db: Knex,
  tenantId: string,
  q: UserListQuery,
): Promise<{ users: User[]; nextCursor: string | null }> {
  const keys: KeyColumn[] = [
    { sql: SORT_SQL[q.sort], dir: q.order },
    { sql: 'id', dir: q.order },
  ];
  const query = db('users').where({ tenant_id: tenantId });
  if (q.email !== undefined) query.andWhere('email_key', caseMappedKey(q.email).slice(0, 320));
  if (q.status) query.andWhere('status', q.status);
  if (q.role) query.andWhere('role', q.role);
  if (q.templateId) query.andWhere('template_id', q.templateId);
  if (q.source) query.andWhere('source', q.source);
  const after = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = await keyset(query, keys, after, q.limit);
  const page = pageFrom(rows as Record<string, unknown>[], q.limit, (r) => {
    const first =
      q.sort === 'createdAt'
        ? Number(r.created_at)
        : q.sort === 'email'
          ? String(r.email_key ?? '')
          : Number(r.last_login_at ?? 0);
    return [first, String(r.id)];
  });
  return { users: page.rows.map(userFromRow), nextCursor: page.nextCursor };
}
