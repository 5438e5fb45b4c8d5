import type { RequestHandler } from 'express';
import { RateLimited } from '../errors.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per SCIM token: `perSecond` sustained, bursts of twice that. Per process, so
 * N processes allow N times the rate; the limit protects each process, not a global quota.
 * A tenant may be exempted (rate_limit_disabled), and 0 turns it off.
 */
export function scimRateLimit(perSecond: number): RequestHandler {
  const buckets = new Map<string, Bucket>();
  const burst = perSecond * 2;
  return (req, _res, next) => {
    if (perSecond <= 0 || !req.auth || req.auth.tenant.rateLimitDisabled) return next();
    const now = Date.now();
    const id = req.auth.token.id;
    const b = buckets.get(id) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    buckets.set(id, b);
    if (buckets.size > 100_000) buckets.delete(buckets.keys().next().value!);
    if (b.tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
      throw new RateLimited('rate_limited', `more than ${perSecond} requests per second for this token; retry after ${wait} s`, { retryAfter: wait });
    }
    b.tokens -= 1;
    next();
  };
}
