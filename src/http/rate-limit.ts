import type { Request, RequestHandler } from 'express';
import { RateLimited } from '../errors.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets by key, `perSecond` sustained with bursts of `burst`. Per process, so N
 * processes allow N times the rate; the limit protects each process, not a global quota.
 */
function buckets(perSecond: number, burst: number) {
  const map = new Map<string, Bucket>();
  /**
   * Takes `cost` tokens, or answers the seconds to wait (0 when taken). A cost above what the
   * bucket can hold (`cap`) needs a full bucket and leaves it in debt, so a large request is
   * paid for by the requests after it instead of never fitting.
   */
  return (key: string, cost = 1, cap = burst): number => {
    const now = Date.now();
    const b = map.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    map.set(key, b);
    if (map.size > 100_000) map.delete(map.keys().next().value!);
    const need = Math.min(cost, cap);
    if (b.tokens < need) return Math.max(1, Math.ceil((need - b.tokens) / perSecond));
    b.tokens -= cost;
    return 0;
  };
}

export interface ScimRateLimit {
  /** One token per request, before the body is read. */
  middleware: RequestHandler;
  /**
   * Charges a request that does the work of `cost` requests (a /Bulk of `cost` operations) the
   * rest of its cost, or throws 429 before any of it is done.
   */
  charge(req: Request, cost: number): void;
}

/**
 * A token bucket per SCIM token: `perSecond` sustained, bursts of twice that. A tenant may be
 * exempted (rate_limit_disabled), and 0 turns it off.
 */
export function scimRateLimit(perSecond: number): ScimRateLimit {
  const burst = perSecond * 2;
  const take = buckets(perSecond, burst);
  /** The bucket a request draws on, or undefined when it is not limited. */
  const keyOf = (req: Request): string | undefined =>
    perSecond <= 0 || !req.auth || req.auth.kind === 'session' || req.auth.tenant.rateLimitDisabled
      ? undefined
      : req.auth.token.id;
  return {
    middleware: (req, _res, next) => {
      const key = keyOf(req);
      if (key === undefined) return next();
      const wait = take(key);
      if (wait)
        throw new RateLimited(
          'rate_limited',
          `more than ${perSecond} requests per second for this token; retry after ${wait} s`,
          { retryAfter: wait },
        );
      next();
    },
    charge: (req, cost) => {
      const key = keyOf(req);
      if (key === undefined || cost <= 1) return;
      // The middleware took one token already; beyond the burst, the bucket must have been full.
      const wait = take(key, cost - 1, burst - 1);
      if (wait) {
        throw new RateLimited(
          'rate_limited',
          `this request counts as ${cost} requests against the token's ${perSecond} per second (bursts of ${burst}); retry after ${wait} s`,
          {
            retryAfter: wait,
          },
        );
      }
    },
  };
}

/**
 * Sign-in endpoints are reached before anyone is authenticated, so they are limited per client
 * address (req.ip honours TRUST_PROXY): `perMinute` sustained, bursts of as many. 0 turns it off.
 */
export function addressRateLimit(perMinute: number): RequestHandler {
  const take = buckets(perMinute / 60, perMinute);
  return (req, _res, next) => {
    if (perMinute <= 0) return next();
    const wait = take(req.ip ?? 'unknown');
    if (wait)
      throw new RateLimited(
        'rate_limited',
        `more than ${perMinute} sign-in requests per minute from this address; retry after ${wait} s`,
        { retryAfter: wait },
      );
    next();
  };
}
