import type { ErrorRequestHandler } from 'express';
import type { ScimType } from '../errors.js';
import { logFailure, setErrorHeaders, toRosterError } from './error-common.js';

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** RFC 7644 §3.12: the HTTP status each scimType may travel with. */
const VALID_PAIRS: Record<ScimType, number[]> = {
  invalidFilter: [400],
  tooMany: [400, 413],
  uniqueness: [409],
  mutability: [400],
  invalidSyntax: [400],
  invalidPath: [400],
  noTarget: [400],
  invalidValue: [400],
  invalidVers: [400],
  sensitive: [400, 403],
};

export function scimTypeFor(status: number, scimType: ScimType | undefined): ScimType | undefined {
  return scimType !== undefined && VALID_PAIRS[scimType].includes(status) ? scimType : undefined;
}

/** The SCIM error body for anything thrown; unexpected failures say only "internal error". */
export function scimErrorBody(err: unknown, requestId: string): { status: number; body: Record<string, unknown> } {
  const known = toRosterError(err);
  const status = known?.status ?? 500;
  const scimType = scimTypeFor(status, known?.extra.scimType);
  return {
    status,
    body: {
      schemas: [SCIM_ERROR_SCHEMA],
      status: String(status),
      ...(scimType ? { scimType } : {}),
      detail: known ? known.message : `internal error (request ${requestId})`,
    },
  };
}

/** SCIM routes answer errors in the SCIM error schema, `status` as a string. */
export function scimErrors(): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const known = toRosterError(err);
    logFailure(req, err, known);
    // A streamed answer that failed part-way has sent its status already: cut it, never answer twice.
    if (res.headersSent) return void res.destroy();
    if (known) setErrorHeaders(res, known);
    const { status, body } = scimErrorBody(err, req.id);
    res.status(status).type('application/scim+json').send(JSON.stringify(body));
  };
}
