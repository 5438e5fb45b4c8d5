import type { Express } from 'express';
import { loadCatalogue } from '../../src/access/catalogue.js';
import { defaultCatalogue } from '../../src/access/catalogue-default.js';
import { createApp } from '../../src/app.js';
import type { AppDeps } from '../../src/http/deps.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createMailer } from '../../src/mail/mailer.js';
import { testDb } from './db.js';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ PUBLIC_BASE_URL: 'https://roster.test', LOG_LEVEL: 'silent', ...env });
}

export async function testDeps(env: Record<string, string> = {}): Promise<AppDeps> {
  const config = testConfig(env);
  const db = await testDb();
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  // No retry timer: a test drives delivery itself, and nothing outlives it.
  const mailer = createMailer({ config, db, logger, retryIntervalMs: 0 });
  return {
    config,
    db,
    logger,
    mailer,
    catalogue: loadCatalogue(config.areaCatalogueFile, defaultCatalogue),
    validateResponses: true,
  };
}

/** The real app over the run's database, configured as a test wants it. */
export async function testApp(env: Record<string, string> = {}): Promise<Express> {
  return createApp(await testDeps(env));
}
