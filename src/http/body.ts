import type { IncomingMessage, ServerOptions } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { RequestHandler } from 'express';
import { InvalidInput, RequestTimeout, TooLarge, UnsupportedMediaType } from '../errors.js';

const JSON_TYPES = /^application\/(?:[\w.+-]+\+)?json$/i;
const FORM_TYPE = /^application\/x-www-form-urlencoded$/i;

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

/**
 * Once a body is abandoned half-read its remaining bytes would be taken for the next request on
 * the connection, so the answer closes it.
 */
function abandon(req: IncomingMessage): void {
  req.unpipe();
  const res = (req as { res?: { headersSent: boolean; setHeader(n: string, v: string): void } }).res;
  if (res && !res.headersSent) res.setHeader('Connection', 'close');
}

/**
 * The request body as a stream that fails with RequestTimeout (408) unless the client has sent
 * all of it within `ms` of this call. Every reader of a body goes through it, so a client that
 * trickles bytes cannot hold a request, and whatever it holds (a database connection, a
 * transaction), open for longer. Read the stream before opening a transaction, not inside one.
 */
export function bodyDeadline(req: IncomingMessage, ms: number): Readable {
  const out = new PassThrough();
  if (req.readableEnded) {
    out.end();
    return out;
  }
  const timer = setTimeout(() => {
    abandon(req);
    out.destroy(new RequestTimeout('body_timeout', `the request body did not arrive within ${ms} ms`));
  }, ms);
  const settle = () => clearTimeout(timer);
  out.once('close', settle);
  req.once('end', settle);
  // pipe() forwards data, not failures: a client that disconnects mid-body ends the reader too.
  req.once('close', () => {
    if (!req.complete) out.destroy(new InvalidInput('bad_body', 'request body could not be read'));
  });
  req.pipe(out);
  return out;
}

/** Whether the request declares a body at all (a length, even 0, or chunked transfer). */
function declaresBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
}

/** A decompressor for the declared content encoding, none for identity; 415 for others. */
function inflater(req: IncomingMessage): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding === 'identity') return undefined;
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  throw new UnsupportedMediaType('unsupported_encoding', `content encoding "${encoding}" is not supported`);
}

/**
 * The whole body, read within `timeoutMs` and at most `limitBytes` (after decompression). The
 * errors are domain errors, so SCIM, the management API and sign-in pages each render them.
 */
async function readBody(req: IncomingMessage, opts: { limitBytes: number; timeoutMs: number }): Promise<Buffer> {
  const tooLarge = () => new TooLarge('body_too_large', `request body exceeds ${opts.limitBytes} bytes`);
  // A declared length over the limit is refused unread; Node discards the body after the answer.
  if (Number(req.headers['content-length'] ?? 0) > opts.limitBytes) throw tooLarge();
  const inflate = inflater(req);
  const source = bodyDeadline(req, opts.timeoutMs);
  if (inflate) source.on('error', (err) => inflate.destroy(err));
  const stream = inflate ? source.pipe(inflate) : source;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > opts.limitBytes) {
        abandon(req);
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (err) {
    source.destroy();
    if (err instanceof RequestTimeout || err instanceof TooLarge || err instanceof InvalidInput) throw err;
    // zlib's complaints about a corrupt compressed body.
    abandon(req);
    throw new InvalidInput('bad_body', 'request body could not be read', { cause: err });
  }
  return Buffer.concat(chunks);
}

/** The body's text in its declared charset; only UTF encodings, as RFC 8259 asks of JSON. */
function text(req: IncomingMessage, buf: Buffer, only: RegExp): string {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(req.headers['content-type'] ?? '');
  const charset = (m?.[1] ?? 'utf-8').toLowerCase();
  let decoder: TextDecoder | undefined;
  try {
    if (only.test(charset)) decoder = new TextDecoder(charset);
  } catch {
    decoder = undefined;
  }
  if (!decoder)
    throw new UnsupportedMediaType('unsupported_encoding', `unsupported charset "${charset.toUpperCase()}"`);
  return decoder.decode(buf);
}

const FIRST_NON_WHITESPACE = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d]|$)/;

/**
 * JSON (incl. application/scim+json) with a size limit, a depth limit and a deadline. Only an
 * object or array is a JSON body; an empty one reads as `{}`. Mounted after authentication, so
 * an anonymous caller cannot make the server read and parse large bodies.
 */
export function parseJsonBody(opts: { limitBytes: number; maxDepth: number; timeoutMs: number }): RequestHandler {
  return async (req, _res, next) => {
    if (
      req.body !== undefined ||
      req.readableEnded ||
      !declaresBody(req) ||
      !isJsonContentType(req.headers['content-type'])
    )
      return next();
    const buf = await readBody(req, opts);
    if (jsonDepth(buf, opts.maxDepth) > opts.maxDepth) {
      throw new InvalidInput('too_deep', `JSON nested deeper than ${opts.maxDepth} levels`, {
        scimType: 'invalidSyntax',
      });
    }
    const body = text(req, buf, /^utf-/);
    const first = FIRST_NON_WHITESPACE.exec(body)?.[1];
    if (!first) req.body = {};
    else {
      const malformed = () =>
        new InvalidInput('malformed_json', 'request body is not valid JSON', { scimType: 'invalidSyntax' });
      if (first !== '{' && first !== '[') throw malformed();
      try {
        req.body = JSON.parse(body);
      } catch (err) {
        throw Object.assign(malformed(), { cause: err });
      }
    }
    next();
  };
}

/** An HTML form post (the SAML POST binding), with the same limits and deadline as JSON. */
export function formBody(opts: { limitBytes: number; timeoutMs: number; maxFields?: number }): RequestHandler {
  const maxFields = opts.maxFields ?? 1000;
  return async (req, _res, next) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (req.body !== undefined || req.readableEnded || !declaresBody(req) || !FORM_TYPE.test(type)) return next();
    const params = new URLSearchParams(text(req, await readBody(req, opts), /^(?:utf-?8|iso-8859-1|latin1)$/));
    const body: Record<string, string | string[]> = {};
    let count = 0;
    for (const [k, v] of params) {
      if (++count > maxFields) throw new TooLarge('too_many_fields', `a form may carry at most ${maxFields} fields`);
      const seen = body[k];
      body[k] = seen === undefined ? v : [...(Array.isArray(seen) ? seen : [seen]), v];
    }
    req.body = body;
    next();
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

/** How long Node itself waits for request headers. */
const HEADERS_TIMEOUT_MS = 20_000;
/** Lets the application's own 408, which says what happened, answer before Node's bare one. */
const BACKSTOP_MARGIN_MS = 5_000;

/**
 * Node's limits on receiving a request, consistent with the body deadline: headers within
 * 20 s, the whole request within the headers' time plus the body deadline plus a margin (a
 * body nobody reads, e.g. of an unknown route, is cut off there with a bare 408), checked every
 * second instead of every 30 s.
 */
export function serverTimeouts(
  bodyTimeoutMs: number,
): Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'> {
  return {
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: HEADERS_TIMEOUT_MS + bodyTimeoutMs + BACKSTOP_MARGIN_MS,
    connectionsCheckingInterval: 1_000,
  };
}
