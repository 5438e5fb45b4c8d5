import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface Reply {
  status: number;
  body: string;
  ms: number;
}

export function call(port: number, method: string, path: string, token?: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'Content-Type': 'application/scim+json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started }));
      },
    );
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** Runs `total` requests made by `make(i)` with `concurrency` in flight; answers requests/s and latencies (ms). */
export async function drive(
  total: number,
  concurrency: number,
  make: (i: number) => Promise<Reply>,
): Promise<{ rate: number; p50: number; p99: number; max: number }> {
  let next = 0;
  const times: number[] = [];
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const r = await make(i);
      if (r.status >= 300) throw new Error(`request ${i} answered ${r.status}: ${r.body.slice(0, 200)}`);
      times.push(r.ms);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(times.length * p))] ?? 0;
  return { rate: total / secs, p50: at(0.5), p99: at(0.99), max: times[times.length - 1] ?? 0 };
}

export interface Streamed {
  status: number;
  bytes: number;
  /** Newline-terminated lines received. */
  lines: number;
  firstByteMs: number;
  ms: number;
  /** The first bytes, for error messages. */
  head: string;
}

/** GETs a (large) body without keeping it: counts its bytes and lines as they arrive. */
export function stream(port: number, path: string, token?: string): Promise<Streamed> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'GET',
        path,
        agent,
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let bytes = 0;
        let lines = 0;
        let firstByteMs = NaN;
        let head = '';
        res.on('data', (c: Buffer) => {
          if (!bytes) firstByteMs = performance.now() - started;
          if (head.length < 300) head += c.subarray(0, 300).toString('utf8');
          bytes += c.length;
          for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) lines++;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, bytes, lines, firstByteMs, ms: performance.now() - started, head }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
