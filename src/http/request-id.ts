import type { RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

/** A caller-supplied id is kept when it is short and printable, so traces join across hops. */
const ACCEPTABLE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    req.id = given && ACCEPTABLE.test(given) ? given : randomUUID();
    req.log = logger.child({ reqId: req.id });
    res.setHeader('X-Request-Id', req.id);
    next();
  };
}

/** One line per request, with the path only: query strings may carry codes or personal data. */
export function accessLog(): RequestHandler {
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      req.log.info(
        {
          method: req.method,
          path: req.originalUrl.split('?')[0],
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
          tenant: req.auth?.tenant.slug,
        },
        'request',
      );
    });
    next();
  };
}
