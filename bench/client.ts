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

/** Runs `total` requests made by `make(i)` with `concurrency` in flight; answers requests/s. */
export async function drive(total: number, concurrency: number, make: (i: number) => Promise<Reply>): Promise<{ rate: number; p99: number }> {
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
  return { rate: total / secs, p99: times[Math.floor(times.length * 0.99)] ?? 0 };
}
