import { Ajv } from 'ajv';
import { parseDuration } from '../text/duration.js';
import { configSchema } from './schema.js';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  readonly publicBaseUrl: string;
  readonly logLevel: string;
  readonly bodyLimitBytes: number;
  readonly requestBodyTimeoutMs: number;
  readonly jsonMaxDepth: number;
  readonly dbPoolMax: number;
  readonly dbAcquireTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly metricsEnabled: boolean;
  readonly metricsToken: string | undefined;
  readonly scimRateLimit: number;
  readonly scimMembersPerResponse: number;
  readonly scimQueryTimeoutMs: number;
  readonly trustProxy: string;
  readonly areaCatalogueFile: string | undefined;
  /** smtp(s)://user:pass@host:port; undefined: mails are logged and kept in the outbox. Holds a password: never log it. */
  readonly smtpUrl: string | undefined;
  readonly mailFrom: string;
  readonly inviteTtlMs: number;
  /** Signs session cookies. Undefined: the app makes a random one (and warns). Never log it. */
  readonly sessionSecret: string | undefined;
  readonly sessionIdleMs: number;
  readonly sessionMaxMs: number;
  readonly samlSpKeyFile: string | undefined;
  readonly samlSpCertFile: string | undefined;
  readonly authRateLimit: number;
  readonly jobLeaseMs: number;
  readonly jobPollMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const validate = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false }).compile(
  configSchema,
);

/** Pure: environment in, frozen Config out; every bad variable is listed at once. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const problems = validate(raw)
    ? []
    : (validate.errors ?? []).map((e) => `${e.instancePath.slice(1) || 'config'}: ${e.message ?? 'invalid'}`);
  const flagged = (key: string) => problems.some((p) => p.startsWith(`${key}:`));
  // Checks the schema cannot express. Messages never repeat the value: SMTP_URL holds a password.
  if (typeof raw.SMTP_URL === 'string' && !flagged('SMTP_URL') && !isSmtpUrl(raw.SMTP_URL)) {
    problems.push('SMTP_URL: must be a URL of the form smtp://user:pass@host:port or smtps://user:pass@host:port');
  }
  const inviteTtlMs = typeof raw.INVITE_TTL === 'string' ? parseDuration(raw.INVITE_TTL) : undefined;
  if (inviteTtlMs === undefined && !flagged('INVITE_TTL')) {
    problems.push('INVITE_TTL: must be a positive number with a unit s, m, h or d (e.g. 7d)');
  }
  const duration = (key: string, example: string) => {
    const ms = typeof raw[key] === 'string' ? parseDuration(raw[key] as string) : undefined;
    if (ms === undefined && !flagged(key))
      problems.push(`${key}: must be a positive number with a unit s, m, h or d (e.g. ${example})`);
    return ms;
  };
  const sessionIdleMs = duration('SESSION_IDLE_TIMEOUT', '1h');
  const sessionMaxMs = duration('SESSION_MAX_AGE', '12h');
  if (sessionIdleMs !== undefined && sessionMaxMs !== undefined && sessionIdleMs > sessionMaxMs) {
    problems.push('SESSION_IDLE_TIMEOUT: must not be longer than SESSION_MAX_AGE');
  }
  if ((raw.SAML_SP_KEY_FILE === undefined) !== (raw.SAML_SP_CERT_FILE === undefined)) {
    problems.push(
      `${raw.SAML_SP_KEY_FILE === undefined ? 'SAML_SP_KEY_FILE' : 'SAML_SP_CERT_FILE'}: SAML_SP_KEY_FILE and SAML_SP_CERT_FILE go together`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  const port = raw.PORT as number;
  return Object.freeze({
    port,
    host: raw.HOST as string,
    databaseUrl: raw.DATABASE_URL as string,
    publicBaseUrl: ((raw.PUBLIC_BASE_URL as string | undefined) ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    logLevel: raw.LOG_LEVEL as string,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES as number,
    requestBodyTimeoutMs: raw.REQUEST_BODY_TIMEOUT_MS as number,
    jsonMaxDepth: raw.JSON_MAX_DEPTH as number,
    dbPoolMax: raw.DB_POOL_MAX as number,
    dbAcquireTimeoutMs: raw.DB_ACQUIRE_TIMEOUT_MS as number,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS as number,
    metricsEnabled: raw.METRICS_ENABLED as boolean,
    metricsToken: raw.METRICS_TOKEN as string | undefined,
    scimRateLimit: raw.SCIM_RATE_LIMIT as number,
    scimMembersPerResponse: raw.SCIM_MEMBERS_PER_RESPONSE as number,
    scimQueryTimeoutMs: raw.SCIM_QUERY_TIMEOUT_MS as number,
    trustProxy: raw.TRUST_PROXY as string,
    areaCatalogueFile: raw.AREA_CATALOGUE_FILE as string | undefined,
    smtpUrl: raw.SMTP_URL as string | undefined,
    mailFrom: raw.MAIL_FROM as string,
    inviteTtlMs: inviteTtlMs!,
    sessionSecret: raw.SESSION_SECRET as string | undefined,
    sessionIdleMs: sessionIdleMs!,
    sessionMaxMs: sessionMaxMs!,
    samlSpKeyFile: raw.SAML_SP_KEY_FILE as string | undefined,
    samlSpCertFile: raw.SAML_SP_CERT_FILE as string | undefined,
    authRateLimit: raw.AUTH_RATE_LIMIT as number,
    jobLeaseMs: raw.JOB_LEASE_MS as number,
    jobPollMs: raw.JOB_POLL_MS as number,
  });
}

function isSmtpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'smtp:' || u.protocol === 'smtps:') && u.hostname !== '';
  } catch {
    return false;
  }
}
