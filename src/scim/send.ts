import type { Response } from 'express';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export function sendScim(res: Response, status: number, body: unknown): void {
  res.status(status).setHeader('Content-Type', SCIM_CONTENT_TYPE);
  res.end(JSON.stringify(body));
}
