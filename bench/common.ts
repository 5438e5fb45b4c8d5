/**
 * What every bench section shares: a Roster process on a fresh database, its first-start
 * secrets, and the row format the summary table prints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CONCURRENCY = 16;

export interface Row {
  what: string;
  value: string;
  target: string;
  ok: boolean | undefined;
}

/** A size or count from the environment, with the number as the default. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw} is not a non-negative number`);
  return n;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export async function start(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; out: () => string }> {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  for (let i = 0; i < 400 && !ready.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  if (!ready.test(out)) {
    child.kill('SIGTERM');
    throw new Error(`${script} did not start: ${out}`);
  }
  // The banner is printed just before listen(): wait until the port answers.
  const port = Number(env.PORT);
  for (let i = 0; i < 200 && port && !(await accepting(port)); i++) await new Promise((r) => setTimeout(r, 25));
  return { child, out: () => out };
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

export type Dialect = 'sqlite' | 'mysql';

/** A fresh database: a SQLite file in `dir`, or a new database on the MariaDB server. */
export interface BenchDatabase {
  url: string;
  dialect: Dialect;
  drop(): Promise<void>;
}

export function sqliteDatabase(dir: string, name: string): BenchDatabase {
  const file = path.join(dir, `${name}.sqlite`);
  return {
    url: `sqlite:${file}`,
    dialect: 'sqlite',
    drop: async () => {
      for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    },
  };
}

export async function mysqlDatabase(): Promise<BenchDatabase | undefined> {
  const server = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const u = new URL(server);
  const name = `roster_bench_${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const admin = knexFactory({
    client: 'mysql2',
    connection: {
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
    },
  });
  try {
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } catch {
    await admin.destroy();
    return undefined;
  }
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    dialect: 'mysql',
    drop: async () => {
      await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.destroy();
    },
  };
}

/** A running Roster process on its own database, with the first-start tenant's secrets. */
export interface Roster {
  label: string;
  url: string;
  dialect: Dialect;
  port: number;
  pid: number;
  /** SCIM token of the `default` tenant. */
  scimToken: string;
  /** Admin API key of the `default` tenant. */
  adminKey: string;
  /** Yardstick rate (requests/s) of a trivial express route, measured in the same run. */
  trivialRate: number;
}

export async function withRoster<T>(
  label: string,
  database: BenchDatabase,
  trivialRate: number,
  run: (r: Roster) => Promise<T>,
): Promise<T> {
  const port = await freePort();
  const roster = await start(
    'src/main.ts',
    {
      DATABASE_URL: database.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SCIM_RATE_LIMIT: '0',
      DB_POOL_MAX: '16',
    },
    /Admin API key\s+roster_admin_\S+/,
  );
  try {
    const scimToken = /SCIM token\s+(roster_scim_\S+)/.exec(roster.out())![1]!;
    const adminKey = /Admin API key\s+(roster_admin_\S+)/.exec(roster.out())![1]!;
    return await run({
      label,
      url: database.url,
      dialect: database.dialect,
      port,
      pid: roster.child.pid!,
      scimToken,
      adminKey,
      trivialRate,
    });
  } finally {
    if (roster.child.exitCode === null) {
      roster.child.kill('SIGTERM');
      await new Promise((r) => roster.child.once('exit', r));
    }
  }
}

/**
 * Another Roster process on an existing database (no first-start banner there), e.g. with a
 * capped heap; `stop()` ends it.
 */
export async function startRosterOn(
  url: string,
  extraEnv: Record<string, string>,
): Promise<{ port: number; pid: number; alive: () => boolean; out: () => string; stop: () => Promise<void> }> {
  const port = await freePort();
  const p = await start(
    'src/main.ts',
    {
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      SCIM_RATE_LIMIT: '0',
      DB_POOL_MAX: '16',
      ...extraEnv,
    },
    /roster listening/,
  );
  return {
    port,
    pid: p.child.pid!,
    alive: () => p.child.exitCode === null && p.child.signalCode === null,
    out: p.out,
    stop: async () => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      p.child.kill('SIGTERM');
      await new Promise((r) => p.child.once('exit', r));
    },
  };
}

/** Milliseconds since the epoch in a UUIDv7 (the ids Roster makes): when the row was built. */
export function v7Millis(id: string): number {
  return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}

export function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN;
}

/** A small deterministic PRNG (mulberry32), so every run seeds the same shapes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);
