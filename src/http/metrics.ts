import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Unauthenticated } from '../errors.js';
import { hashesEqual, hashToken } from '../tenants/tokens.js';

/** The part of the API a path belongs to; a bounded label set, unlike raw paths. */
export function routeFamily(path: string): string {
  if (path.startsWith('/scim/')) return 'scim';
  if (path.startsWith('/api/')) return 'management';
  if (path.startsWith('/auth/')) return 'sso';
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return 'system';
  return 'other';
}

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  max: number;
}

export interface Metrics {
  registry: Registry;
  middleware: RequestHandler;
  handler: RequestHandler;
}

/** A registry per app, so several apps in one test process do not collide. */
export function createMetrics(knex: Knex, token: string | undefined): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'roster_http_requests_total',
    help: 'HTTP requests by route family, method and status',
    labelNames: ['family', 'method', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'roster_http_request_duration_seconds',
    help: 'HTTP request latency by route family and status',
    labelNames: ['family', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const pool = (): TarnPool | undefined => (knex.client as { pool?: TarnPool }).pool;
  new Gauge({
    name: 'roster_db_pool_connections',
    help: 'Database pool connections by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const p = pool();
      if (!p) return;
      this.set({ state: 'used' }, p.numUsed());
      this.set({ state: 'free' }, p.numFree());
      this.set({ state: 'pending' }, p.numPendingAcquires());
      this.set({ state: 'max' }, p.max);
    },
  });

  // The backlog of every tenant, which the jobs API shows only tenant by tenant.
  new Gauge({
    name: 'roster_jobs',
    help: 'Jobs queued or running (all tenants)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      let rows: { state: string; n: number | string }[];
      try {
        rows = await knex('jobs')
          .whereIn('state', ['queued', 'running'])
          .groupBy('state')
          .select('state')
          .count({ n: '*' });
      } catch {
        // With the database away the other metrics matter most; this one keeps its last values.
        return;
      }
      const counts = new Map(rows.map((r) => [r.state, Number(r.n)]));
      for (const state of ['queued', 'running']) this.set({ state }, counts.get(state) ?? 0);
    },
  });

  const middleware: RequestHandler = (req, res, next) => {
    const end = latency.startTimer();
    res.on('finish', () => {
      const family = routeFamily(req.originalUrl.split('?')[0]!);
      const status = String(res.statusCode);
      requests.inc({ family, method: req.method, status });
      end({ family, status });
    });
    next();
  };

  const expected = token ? hashToken(token) : undefined;
  const handler: RequestHandler = async (req, res) => {
    if (expected) {
      const m = /^Bearer +(\S+)$/i.exec(req.get('authorization') ?? '');
      if (!m || !hashesEqual(hashToken(m[1]!), expected))
        throw new Unauthenticated('invalid_token', 'metrics need the metrics token');
    }
    res.type(registry.contentType).send(await registry.metrics());
  };
  return { registry, middleware, handler };
}
