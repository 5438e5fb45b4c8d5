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
    assert.equal(c.smtpUrl, undefined);
    assert.equal(c.mailFrom, 'Roster <no-reply@localhost>');
    assert.equal(c.inviteTtlMs, 7 * 86_400_000);
    assert.ok(Object.isFrozen(c));
  });

  it('reads the mail settings and parses INVITE_TTL as a duration', () => {
    const c = loadConfig({
      SMTP_URL: 'smtps://u:p%40ss@mail.example.com:465',
      MAIL_FROM: 'Acme <id@acme.test>',
      INVITE_TTL: '12h',
    });
    assert.equal(c.smtpUrl, 'smtps://u:p%40ss@mail.example.com:465');
    assert.equal(c.mailFrom, 'Acme <id@acme.test>');
    assert.equal(c.inviteTtlMs, 12 * 3_600_000);
  });

  it('refuses bad mail settings without repeating the SMTP password', () => {
    for (const [env, key] of [
      [{ SMTP_URL: 'http://u:hunter22@mail.example.com' }, 'SMTP_URL'],
      [{ SMTP_URL: 'smtp://u:hunter22@mail.example.com:99999' }, 'SMTP_URL'],
      [{ INVITE_TTL: '0d' }, 'INVITE_TTL'],
      [{ INVITE_TTL: 'a week' }, 'INVITE_TTL'],
      [{ MAIL_FROM: 'nobody' }, 'MAIL_FROM'],
    ] as const) {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.problems.length, 1, err.message);
          assert.match(err.problems[0]!, new RegExp(`^${key}: `));
          assert.ok(!err.message.includes('hunter22'));
          return true;
        },
      );
    }
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
