import { createHash } from 'node:crypto';
import { Store, type SessionData } from 'express-session';
import type { Knex } from 'knex';
import { toMs } from '../db/rows.js';

export interface SessionLimits {
  /** A session unused this long ends. */
  idleMs: number;
  /** A session ends this long after sign-in, however active. */
  maxMs: number;
}

/** Only a hash of the cookie's session id is stored: a copy of the table opens no sessions. */
function sidHash(sid: string): string {
  return createHash('sha256').update(sid).digest('hex');
}

type Callback<T = void> = (err?: unknown, value?: T) => void;

/**
 * express-session's store, in the database so every Roster process sees every session and a
 * user's sessions can be ended by user (SCIM deactivation) or connection. Rows carry their own
 * expiry: the earlier of idle and absolute timeouts; an expired row is never handed out.
 */
export class KnexSessionStore extends Store {
  /** Recording every request would turn each read into a write; the idle clock moves in steps. */
  private readonly touchStepMs: number;
  /** When each session was last recorded as seen, as far as this process knows. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly db: Knex,
    private readonly limits: SessionLimits,
  ) {
    super();
    this.touchStepMs = Math.min(60_000, Math.floor(limits.idleMs / 10));
  }

  private expiry(signedInAt: number, now: number): number {
    return Math.min(now + this.limits.idleMs, signedInAt + this.limits.maxMs);
  }

  override get(sid: string, cb: Callback<SessionData | null>): void {
    void (async () => {
      const row = await this.db('sessions')
        .where({ sid_hash: sidHash(sid) })
        .first();
      if (!row) return cb(null, null);
      if (toMs(row.expires_at)! <= Date.now()) {
        await this.db('sessions')
          .where({ sid_hash: sidHash(sid) })
          .delete();
        return cb(null, null);
      }
      this.noteSeen(String(row.sid_hash), toMs(row.seen_at)!);
      cb(null, JSON.parse(String(row.data)) as SessionData);
    })().catch(cb);
  }

  override set(sid: string, session: SessionData, cb?: Callback): void {
    void (async () => {
      if (!session.tenantId || !session.userId || !session.signedInAt) {
        throw new Error('only a signed-in session is stored');
      }
      const now = Date.now();
      const row = {
        sid_hash: sidHash(sid),
        tenant_id: session.tenantId,
        user_id: session.userId,
        connection_id: session.connectionId ?? null,
        data: JSON.stringify(session),
        created_at: session.signedInAt,
        seen_at: now,
        expires_at: this.expiry(session.signedInAt, now),
      };
      await this.db('sessions').insert(row).onConflict('sid_hash').merge(['data', 'seen_at', 'expires_at']);
      // Sign-ins are when a tenant's abandoned sessions are swept, by the expiry index.
      await this.db('sessions').where('tenant_id', session.tenantId).andWhere('expires_at', '<=', now).delete();
    })().then(
      () => cb?.(),
      (err: unknown) => cb?.(err),
    );
  }

  override destroy(sid: string, cb?: Callback): void {
    this.db('sessions')
      .where({ sid_hash: sidHash(sid) })
      .delete()
      .then(
        () => cb?.(),
        (err: unknown) => cb?.(err),
      );
  }

  private noteSeen(hash: string, at: number): void {
    this.seen.delete(hash);
    this.seen.set(hash, at);
    if (this.seen.size > 100_000) this.seen.delete(this.seen.keys().next().value!);
  }

  override touch(sid: string, session: SessionData, cb?: Callback): void {
    const now = Date.now();
    const hash = sidHash(sid);
    if (now - (this.seen.get(hash) ?? 0) < this.touchStepMs) {
      cb?.();
      return;
    }
    this.noteSeen(hash, now);
    this.db('sessions')
      .where({ sid_hash: hash })
      .andWhere('expires_at', '>', now)
      .update({ seen_at: now, expires_at: this.expiry(session.signedInAt, now) })
      .then(
        () => cb?.(),
        (err: unknown) => cb?.(err),
      );
  }
}
