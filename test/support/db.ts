import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { openDb, type Db } from '../../src/db/knex.js';
import { migrateLatest } from '../../src/db/migrate.js';

/**
 * The dialect matrix: `npm test` runs on SQLite; TEST_DATABASE_URL=mysql://root@127.0.0.1:3306
 * runs the same suites on MariaDB/MySQL, in a database made for the run and dropped after it.
 */
export const TEST_SERVER_URL = process.env.TEST_DATABASE_URL;
export const dialectName: 'sqlite' | 'mysql' =
  TEST_SERVER_URL?.startsWith('mysql') || TEST_SERVER_URL?.startsWith('mariadb') ? 'mysql' : 'sqlite';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'roster-test-'));
const made: string[] = [];

function serverUrl(database: string): string {
  const u = new URL(TEST_SERVER_URL!.replace(/^mariadb:/, 'mysql:'));
  u.pathname = `/${database}`;
  return u.toString();
}

async function adminQuery(sql: string): Promise<void> {
  const u = new URL(TEST_SERVER_URL!.replace(/^mariadb:/, 'mysql:'));
  u.pathname = '/';
  const k = knexFactory({
    client: 'mysql2',
    connection: {
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
    },
    pool: { min: 0, max: 1 },
  });
  try {
    await k.raw(sql);
  } finally {
    await k.destroy();
  }
}

let counter = 0;

/** A new, empty database URL of the run's dialect (not migrated). */
export async function freshDatabaseUrl(label = 'db'): Promise<string> {
  counter++;
  if (dialectName === 'sqlite') return `sqlite:${path.join(tmpRoot, `${label}-${counter}.sqlite`)}`;
  const name = `roster_t_${process.pid}_${Date.now().toString(36)}_${counter}`;
  await adminQuery(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  made.push(name);
  return serverUrl(name);
}

let shared: { url: string; db: Db } | undefined;

/** The run's migrated database, shared by every suite; tests isolate through fresh tenants. */
export async function testDb(): Promise<Db> {
  if (!shared) {
    const url = await freshDatabaseUrl('shared');
    const db = openDb(url, { poolMax: 10, acquireTimeoutMs: 5000 });
    await migrateLatest(db.knex);
    shared = { url, db };
  }
  return shared.db;
}

export async function testDbUrl(): Promise<string> {
  await testDb();
  return shared!.url;
}

export async function dropTestDatabases(): Promise<void> {
  await shared?.db.close();
  shared = undefined;
  if (dialectName === 'mysql') {
    for (const name of made.splice(0)) await adminQuery(`DROP DATABASE IF EXISTS \`${name}\``);
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true });
}
