import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { InvalidInput, TooLarge, UnsupportedMediaType } from '../errors.js';

const JSON_TYPES = /^application\/(?:[\w.+-]+\+)?json$/i;

export function isJsonContentType(header: string | undefined): boolean {
  return header !== undefined && JSON_TYPES.test(header.split(';')[0]!.trim());
}

/**
 * Deepest nesting of arrays and objects in raw JSON text, counted without parsing so a hostile
 * body cannot make anything recurse: JSON.stringify of a 5,000-level value throws.
 */
export function jsonDepth(buf: Buffer, stopAbove: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

class TooDeep extends Error {
  readonly status = 400;
  readonly type = 'entity.too.deep';
}

/** JSON (incl. application/scim+json) with a size and a depth limit. */
export function jsonBody(opts: { limitBytes: number; maxDepth: number }): RequestHandler {
  return express.json({
    limit: opts.limitBytes,
    type: (req) => isJsonContentType(req.headers['content-type']),
    verify: (_req, _res, buf) => {
      if (jsonDepth(buf, opts.maxDepth) > opts.maxDepth) throw new TooDeep(`JSON nested deeper than ${opts.maxDepth} levels`);
    },
  });
}

/** Turns body-parser's errors into domain errors, so both protocol mappers render them. */
export function bodyErrors(limitBytes: number): ErrorRequestHandler {
  return (err: { type?: string; message?: string }, _req, _res, next) => {
    switch (err?.type) {
      case 'entity.too.large':
        return next(new TooLarge('body_too_large', `request body exceeds ${limitBytes} bytes`, { cause: err }));
      case 'entity.too.deep':
        return next(new InvalidInput('too_deep', err.message ?? 'JSON nested too deeply', { scimType: 'invalidSyntax', cause: err }));
      case 'entity.parse.failed':
        return next(new InvalidInput('malformed_json', 'request body is not valid JSON', { scimType: 'invalidSyntax', cause: err }));
      case 'charset.unsupported':
      case 'encoding.unsupported':
        return next(new UnsupportedMediaType('unsupported_encoding', err.message ?? 'unsupported encoding', { cause: err }));
      case 'request.aborted':
      case 'request.size.invalid':
        return next(new InvalidInput('bad_body', 'request body could not be read', { cause: err }));
      default:
        return next(err);
    }
  };
}

/** Writes must say they send JSON; anything else is 415 rather than an empty body. */
export function requireJsonForWrites(): RequestHandler {
  return (req, _res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && ['POST', 'PUT', 'PATCH'].includes(req.method) && !isJsonContentType(req.headers['content-type'])) {
      return next(
        new UnsupportedMediaType(
          'unsupported_media_type',
          `Content-Type ${req.headers['content-type'] ?? '(none)'} is not accepted; send application/scim+json or application/json`,
        ),
      );
    }
    next();
  };
}

/**
 * The body parser with its error translation; mounted after authentication, so an anonymous
 * caller cannot make the server read and parse large bodies.
 */
export function parseJsonBody(opts: { limitBytes: number; maxDepth: number }): [RequestHandler, ErrorRequestHandler] {
  return [jsonBody(opts), bodyErrors(opts.limitBytes)];
}
