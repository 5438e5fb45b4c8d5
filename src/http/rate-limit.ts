import type { RequestHandler } from 'express';
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
  /** Seconds to wait, or 0 when a token was taken. */
  return (key: string): number => {
    const now = Date.now();
    const b = map.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    map.set(key, b);
    if (map.size > 100_000) map.delete(map.keys().next().value!);
    if (b.tokens < 1) return Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
    b.tokens -= 1;
    return 0;
  };
}

/**
 * A token bucket per SCIM token: `perSecond` sustained, bursts of twice that. A tenant may be
 * exempted (rate_limit_disabled), and 0 turns it off.
 */
export function scimRateLimit(perSecond: number): RequestHandler {
  const take = buckets(perSecond, perSecond * 2);
  return (req, _res, next) => {
    if (perSecond <= 0 || !req.auth || req.auth.kind === 'session' || req.auth.tenant.rateLimitDisabled) return next();
    const wait = take(req.auth.token.id);
    if (wait) throw new RateLimited('rate_limited', `more than ${perSecond} requests per second for this token; retry after ${wait} s`, { retryAfter: wait });
    next();
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
    if (wait) throw new RateLimited('rate_limited', `more than ${perMinute} sign-in requests per minute from this address; retry after ${wait} s`, { retryAfter: wait });
    next();
  };
}
