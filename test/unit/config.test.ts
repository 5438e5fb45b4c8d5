import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/load.js';

describe('configuration', () => {
  it('fills defaults for an empty environment', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.databaseUrl, 'sqlite:./data/roster.sqlite');
    assert.equal(c.publicBaseUrl, 'http://localhost:8080');
    assert.equal(c.dbAcquireTimeoutMs, 2000);
    assert.ok(Object.isFrozen(c));
  });

  it('coerces numbers and booleans from strings and trims a trailing slash off the base URL', () => {
    const c = loadConfig({ PORT: '9000', METRICS_ENABLED: 'false', PUBLIC_BASE_URL: 'https://id.example.com/' });
    assert.equal(c.port, 9000);
    assert.equal(c.metricsEnabled, false);
    assert.equal(c.publicBaseUrl, 'https://id.example.com');
  });

  it('lists every bad variable at once', () => {
    assert.throws(
      () => loadConfig({ PORT: 'eighty', DATABASE_URL: 'postgres://x', LOG_LEVEL: 'loud' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.problems.join('\n');
        assert.match(text, /PORT/);
        assert.match(text, /DATABASE_URL/);
        assert.match(text, /LOG_LEVEL/);
        return true;
      },
    );
  });
});
