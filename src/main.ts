import http from 'node:http';
import { CatalogueError, loadCatalogue } from './access/catalogue.js';
import { defaultCatalogue } from './access/catalogue-default.js';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';
import { openDb } from './db/knex.js';
import { migrateLatest } from './db/migrate.js';
import { serverTimeouts } from './http/body.js';
import { createJobWorker } from './jobs/worker.js';
import { createLogger } from './log.js';
import { createMailer } from './mail/mailer.js';
import { SpCredentialsError } from './sso/routes.js';
import { firstStart, firstStartBanner } from './provisioning/bootstrap.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let catalogue;
  try {
    catalogue = loadCatalogue(config.areaCatalogueFile, defaultCatalogue);
  } catch (err) {
    if (err instanceof CatalogueError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const db = openDb(config.databaseUrl, {
    poolMax: config.dbPoolMax,
    acquireTimeoutMs: config.dbAcquireTimeoutMs,
    logger,
  });
  const applied = await migrateLatest(db.knex);
  if (applied.length) logger.info({ applied }, 'migrations applied');

  const credentials = await firstStart(db.knex);
  if (credentials) process.stdout.write(firstStartBanner(credentials, config.publicBaseUrl));
  if (config.publicBaseUrl.startsWith('http://') && !/^http:\/\/(localhost|127\.|\[::1\])/.test(config.publicBaseUrl)) {
    logger.warn(
      { publicBaseUrl: config.publicBaseUrl },
      'PUBLIC_BASE_URL is not https; bearer tokens would cross the network in clear',
    );
  }

  const mailer = createMailer({ config, db, logger });
  // Invitations committed before a restart are sent now.
  mailer.kick();
  let app;
  try {
    app = createApp({ config, db, logger, catalogue, mailer });
  } catch (err) {
    // Unreadable SAML SP key files are configuration mistakes: said plainly, like other bad settings.
    if (err instanceof SpCredentialsError) {
      process.stderr.write(`${err.message}\n`);
      await db.close();
      process.exit(2);
    }
    throw err;
  }
  // After createApp: every module that registers a job kind is loaded by then.
  const jobs = createJobWorker({ db, logger, leaseMs: config.jobLeaseMs, pollMs: config.jobPollMs });
  jobs.start();
  let closing = false;
  // During shutdown, answers ask keep-alive clients to reconnect elsewhere.
  const server = http.createServer(serverTimeouts(config.requestBodyTimeoutMs), (req, res) => {
    if (closing) res.setHeader('Connection', 'close');
    app(req, res);
  });
  server.listen(config.port, config.host, () => {
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    logger.info({ host: config.host, port, database: db.dialect.name }, 'roster listening');
  });

  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    const force = setTimeout(() => {
      logger.warn('in-flight requests did not finish in time; closing their connections');
      server.closeAllConnections();
    }, config.shutdownTimeoutMs);
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    // The running chunk finishes and its job goes back to the queue for another process.
    const jobsStopped = jobs.stop();
    server.close(async () => {
      clearTimeout(force);
      clearInterval(idle);
      await mailer.close();
      await jobsStopped;
      await db.close();
      logger.info('stopped');
      logger.flush?.();
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`roster failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
