/**
 * The one error hierarchy of the domain. Nothing here knows HTTP bodies or SQL: the protocol
 * layers map these once each (http/scim-error.ts, http/problem.ts).
 */

/** RFC 7644 §3.12 scimType values. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export interface FieldError {
  path: string;
  message: string;
}

export interface ErrorExtra {
  scimType?: ScimType;
  fields?: FieldError[];
  cause?: unknown;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
  /** Extra members a problem+json body carries (e.g. the users holding a template). */
  details?: Record<string, unknown>;
}

export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 408 | 409 | 412 | 413 | 415 | 422 | 429 | 501 | 503;

export abstract class RosterError extends Error {
  abstract readonly status: ErrorStatus;
  constructor(
    readonly code: string,
    message: string,
    readonly extra: ErrorExtra = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = new.target.name;
  }
}

export class InvalidInput extends RosterError {
  readonly status = 400;
}
export class Unauthenticated extends RosterError {
  readonly status = 401;
}
export class Forbidden extends RosterError {
  readonly status = 403;
}
export class NotFound extends RosterError {
  readonly status = 404;
}
export class MethodNotAllowed extends RosterError {
  readonly status = 405;
}
/** The client took longer than the server waits to send its request (a body trickled in). */
export class RequestTimeout extends RosterError {
  readonly status = 408;
}
export class Conflict extends RosterError {
  readonly status = 409;
}
export class PreconditionFailed extends RosterError {
  readonly status = 412;
}
export class TooLarge extends RosterError {
  readonly status = 413;
}
export class UnsupportedMediaType extends RosterError {
  readonly status = 415;
}
/** Well-formed input that breaks a domain rule (inheritance, cycles, private agents). */
export class Unprocessable extends RosterError {
  readonly status = 422;
}
export class RateLimited extends RosterError {
  readonly status = 429;
}
export class NotImplemented extends RosterError {
  readonly status = 501;
}
export class Unavailable extends RosterError {
  readonly status = 503;
}
