/**
 * Issue 11's worst requests one tenant can send, shared by the stall test
 * (test/e2e/tenant-stall.test.ts) and the bench's "worst" section: each is sent by tenant A
 * to a real Roster process while tenant B reads, and must not stall tenant B.
 */
import net from 'node:net';

export interface Target {
  port: number;
  scimToken: string;
  adminKey: string;
}

export interface WorstRequest {
  name: string;
  /** Prepares what the request needs (not measured). */
  setup?(t: Target): Promise<unknown>;
  /** Sends the request; answers its HTTP status. */
  send(t: Target, prepared: unknown): Promise<number>;
  /** Statuses that count as a correct answer. */
  expect: number[];
}

async function http(
  t: Target,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  contentType = 'application/scim+json',
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${t.port}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': contentType }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

async function createUser(t: Target, userName: string): Promise<string> {
  const r = await http(t, 'POST', '/scim/v2/Users', t.scimToken, { schemas: [USER], userName, active: true });
  if (r.status !== 201) throw new Error(`setup: POST /Users answered ${r.status}: ${JSON.stringify(r.json)}`);
  return (r.json as { id: string }).id;
}

/** A PATCH adding about 1 MiB of distinct email values to one user. */
const hugePatch: WorstRequest = {
  name: 'PATCH with 1 MiB of email values',
  setup: (t) => createUser(t, `patch-${Date.now()}@a.example`),
  async send(t, id) {
    const value: { value: string; type: string }[] = [];
    // Just under the default 1 MiB body limit, so the request is read and judged, not refused for its size.
    for (let i = 0, size = 100; size < 1_000_000; i++) {
      const v = { value: `u${i}@a.example`, type: 'work' };
      value.push(v);
      size += JSON.stringify(v).length + 1;
    }
    return (
      await http(t, 'PATCH', `/scim/v2/Users/${id as string}`, t.scimToken, {
        schemas: [PATCH_OP],
        Operations: [{ op: 'add', path: 'emails', value }],
      })
    ).status;
  },
  expect: [400],
};

/** A glob rule of the catastrophic-backtracking shape over a 200-character IdP group name. */
const badGlob: WorstRequest = {
  name: 'mapping rule with glob *a*a*a*a*a*a*a*a*a*b',
  async setup(t) {
    const g = await http(t, 'POST', '/scim/v2/Groups', t.scimToken, { schemas: [GROUP], displayName: 'a'.repeat(200) });
    if (g.status !== 201) throw new Error(`setup: POST /Groups answered ${g.status}`);
    const local = await http(
      t,
      'POST',
      '/api/v1/groups',
      t.adminKey,
      { name: `glob target ${Date.now()}` },
      'application/json',
    );
    if (local.status !== 201)
      throw new Error(`setup: POST /api/v1/groups answered ${local.status}: ${JSON.stringify(local.json)}`);
    return (local.json as { id: string }).id;
  },
  async send(t, groupId) {
    const rule = {
      name: `glob ${Date.now()}`,
      enabled: true,
      match: { source: 'any', field: 'displayName', operator: 'glob', value: '*a*a*a*a*a*a*a*a*a*b' },
      actions: { groups: [{ groupId: groupId as string, role: 'member' }], agents: [] },
    };
    return (await http(t, 'POST', '/api/v1/mapping-rules', t.adminKey, rule, 'application/json')).status;
  },
  expect: [200, 201, 202],
};

/**
 * A CSV upload trickled one byte every 100 ms: the server must answer 408 after
 * REQUEST_BODY_TIMEOUT_MS without holding a database connection meanwhile.
 */
const trickledUpload: WorstRequest = {
  name: 'CSV upload trickled at 1 byte / 100 ms',
  send(t) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(t.port, '127.0.0.1');
      let reply = '';
      let timer: NodeJS.Timeout | undefined;
      const body = `Name,Email,Group\n${'x'.repeat(10_000)}`;
      sock.once('connect', () => {
        sock.write(
          `POST /api/v1/imports/group-members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminKey}\r\n` +
            `Content-Type: text/csv\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        );
        let i = 0;
        timer = setInterval(() => {
          if (i < body.length && !sock.destroyed) sock.write(body[i++]!);
        }, 100);
      });
      sock.on('data', (d) => (reply += d));
      const done = () => {
        clearInterval(timer);
        const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
        if (m) resolve(Number(m[1]));
        else reject(new Error(`no HTTP answer to the trickled upload: ${JSON.stringify(reply.slice(0, 80))}`));
      };
      sock.on('close', done);
      sock.on('error', () => undefined);
    });
  },
  expect: [408],
};

/** The deepest, widest filter of unindexable substring terms the parser lets through (or refuses). */
const deepFilter: WorstRequest = {
  name: 'deep filter of substring terms',
  async send(t) {
    let f = 'userName co "a"';
    for (let i = 0; i < 30; i++) f = `(${f} or displayName co "${'b'.repeat(i + 1)}") and not (nickName co "c${i}")`;
    return (await http(t, 'GET', `/scim/v2/Users?filter=${encodeURIComponent(f)}`, t.scimToken)).status;
  },
  expect: [200, 400],
};

/** A 1,000-operation Bulk of user creations. */
const bigBulk: WorstRequest = {
  name: '/Bulk with 1,000 POST operations',
  async send(t) {
    const stamp = Date.now();
    const Operations = Array.from({ length: 1000 }, (_, i) => ({
      method: 'POST',
      path: '/Users',
      bulkId: `b${i}`,
      data: { schemas: [USER], userName: `bulk-${stamp}-${i}@a.example`, active: true },
    }));
    return (
      await http(t, 'POST', '/scim/v2/Bulk', t.scimToken, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
        Operations,
      })
    ).status;
  },
  expect: [200],
};

export const WORST_REQUESTS: WorstRequest[] = [hugePatch, badGlob, trickledUpload, deepFilter, bigBulk];

/**
 * Sends `request` as tenant A while tenant B reads one page of users back to back; answers
 * tenant A's status and time and tenant B's slowest read during it.
 */
export async function underLoad(
  a: Target,
  b: Target,
  request: WorstRequest,
): Promise<{ status: number; ms: number; slowestB: number; readsB: number }> {
  const prepared = await request.setup?.(a);
  let running = true;
  let slowestB = 0;
  let readsB = 0;
  const reader = (async () => {
    while (running) {
      const started = performance.now();
      const r = await http(b, 'GET', '/scim/v2/Users?count=10', b.scimToken);
      if (r.status !== 200) throw new Error(`tenant B's read answered ${r.status}: ${JSON.stringify(r.json)}`);
      slowestB = Math.max(slowestB, performance.now() - started);
      readsB++;
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  // Its failure is reported below, once tenant A's request is over.
  reader.catch(() => undefined);
  const started = performance.now();
  let status: number;
  try {
    status = await request.send(a, prepared);
  } finally {
    running = false;
  }
  const ms = performance.now() - started;
  await reader;
  return { status, ms, slowestB, readsB };
}
