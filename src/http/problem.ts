import type { ErrorRequestHandler } from 'express';
import { STATUS_CODES } from 'node:http';
import { logFailure, setErrorHeaders, toRosterError } from './error-common.js';

/** Management and system routes answer errors as RFC 9457 problem details. */
export function problemErrors(): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const known = toRosterError(err);
    logFailure(req, err, known);
    // A streamed answer that failed part-way has sent its status already: cut it, never answer twice.
    if (res.headersSent) return void res.destroy();
    const status = known?.status ?? 500;
    if (known) setErrorHeaders(res, known);
    res
      .status(status)
      .type('application/problem+json')
      .json({
        type: 'about:blank',
        title: STATUS_CODES[status],
        status,
        code: known?.code ?? 'internal_error',
        detail: known ? known.message : 'internal error',
        instance: req.originalUrl.split('?')[0],
        requestId: req.id,
        ...(known?.extra.fields ? { fields: known.extra.fields } : {}),
        ...(known?.extra.details
          ? Object.fromEntries(Object.entries(known.extra.details).filter(([k]) => k !== 'allow'))
          : {}),
      });
  };
}
