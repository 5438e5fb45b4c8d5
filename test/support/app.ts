import type { Express } from 'express';
import { loadCatalogue } from '../../src/access/catalogue.js';
import { defaultCatalogue } from '../../src/access/catalogue-default.js';
import { createApp, type AppDeps } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { testDb } from './db.js';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ PUBLIC_BASE_URL: 'https://roster.test', LOG_LEVEL: 'silent', ...env });
}

export async function testDeps(env: Record<string, string> = {}): Promise<AppDeps> {
  const config = testConfig(env);
  return { config, db: await testDb(), logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), catalogue: loadCatalogue(config.areaCatalogueFile, defaultCatalogue) };
}

/** The real app over the run's database, configured as a test wants it. */
export async function testApp(env: Record<string, string> = {}): Promise<Express> {
  return createApp(await testDeps(env));
}
