import { Ajv } from 'ajv';
import { configSchema } from './schema.js';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  readonly publicBaseUrl: string;
  readonly logLevel: string;
  readonly bodyLimitBytes: number;
  readonly jsonMaxDepth: number;
  readonly dbPoolMax: number;
  readonly dbAcquireTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly metricsEnabled: boolean;
  readonly metricsToken: string | undefined;
  readonly scimRateLimit: number;
  readonly trustProxy: string;
  readonly areaCatalogueFile: string | undefined;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const validate = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false }).compile(configSchema);

/** Pure: environment in, frozen Config out; every bad variable is listed at once. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  if (!validate(raw)) {
    throw new ConfigError(
      (validate.errors ?? []).map((e) => `${e.instancePath.slice(1) || 'config'}: ${e.message ?? 'invalid'}`),
    );
  }
  const port = raw.PORT as number;
  return Object.freeze({
    port,
    host: raw.HOST as string,
    databaseUrl: raw.DATABASE_URL as string,
    publicBaseUrl: ((raw.PUBLIC_BASE_URL as string | undefined) ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    logLevel: raw.LOG_LEVEL as string,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES as number,
    jsonMaxDepth: raw.JSON_MAX_DEPTH as number,
    dbPoolMax: raw.DB_POOL_MAX as number,
    dbAcquireTimeoutMs: raw.DB_ACQUIRE_TIMEOUT_MS as number,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS as number,
    metricsEnabled: raw.METRICS_ENABLED as boolean,
    metricsToken: raw.METRICS_TOKEN as string | undefined,
    scimRateLimit: raw.SCIM_RATE_LIMIT as number,
    trustProxy: raw.TRUST_PROXY as string,
    areaCatalogueFile: raw.AREA_CATALOGUE_FILE as string | undefined,
  });
}
