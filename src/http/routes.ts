import type { RequestHandler, Router } from 'express';
import { MethodNotAllowed } from '../errors.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * Registers a path's handlers and answers every other method with 405 and an Allow header
 * (Okta's suite POSTs to discovery endpoints and expects 405).
 */
export function resource(
  router: Router,
  path: string,
  handlers: Partial<Record<Method, RequestHandler | RequestHandler[]>>,
): void {
  const methods = Object.keys(handlers) as Method[];
  for (const m of methods) {
    const h = handlers[m]!;
    router[m](path, ...(Array.isArray(h) ? h : [h]));
  }
  const allow = methods.map((m) => m.toUpperCase());
  if (allow.includes('GET')) allow.push('HEAD');
  router.all(path, () => {
    throw new MethodNotAllowed('method_not_allowed', `method not allowed here; allowed: ${allow.join(', ')}`, {
      details: { allow: allow.join(', ') },
    });
  });
}
