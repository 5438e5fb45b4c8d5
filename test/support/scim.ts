import request from 'supertest';
import type { Express } from 'express';

export const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** Parses application/scim+json bodies into res.body, as superagent does for application/json. */
const scimJson = ((res: NodeJS.ReadableStream, done: (err: Error | null, body: unknown) => void) => {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => (text += c));
  res.on('end', () => {
    try {
      done(null, text ? JSON.parse(text) : undefined);
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}) as unknown as (str: string) => unknown;

/** A SCIM client bound to one tenant's token, speaking application/scim+json like Okta and Entra. */
export function scimClient(app: Express, token: string) {
  const auth = { Authorization: `Bearer ${token}`, Accept: 'application/scim+json' };
  const send = (method: 'post' | 'put' | 'patch', path: string, body: unknown, headers: Record<string, string> = {}) =>
    request(app)
      [method](`/scim/v2${path}`)
      .set(auth)
      .set('Content-Type', 'application/scim+json; charset=utf-8')
      .set(headers)
      .send(JSON.stringify(body))
      .parse(scimJson);
  return {
    get: (path: string, headers: Record<string, string> = {}) =>
      request(app).get(`/scim/v2${path}`).set(auth).set(headers).parse(scimJson),
    delete: (path: string, headers: Record<string, string> = {}) =>
      request(app).delete(`/scim/v2${path}`).set(auth).set(headers).parse(scimJson),
    post: (path: string, body: unknown, headers?: Record<string, string>) => send('post', path, body, headers),
    put: (path: string, body: unknown, headers?: Record<string, string>) => send('put', path, body, headers),
    patch: (path: string, body: unknown, headers?: Record<string, string>) => send('patch', path, body, headers),
  };
}

export function patchBody(...Operations: unknown[]) {
  return { schemas: [PATCH_OP], Operations };
}

export function oktaUser(userName: string, extra: Record<string, unknown> = {}) {
  return {
    schemas: [USER],
    userName,
    name: { givenName: 'Test', familyName: 'User' },
    emails: [{ primary: true, value: userName, type: 'work' }],
    displayName: 'Test User',
    locale: 'en-US',
    externalId: '00ujl29u0le5T6Aj10h7',
    groups: [],
    password: '1mz050nq',
    active: true,
    ...extra,
  };
}
