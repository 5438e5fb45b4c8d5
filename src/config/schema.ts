/**
 * The process configuration, one ajv schema with defaults and coercion. Each property is one
 * environment variable; README's configuration table is written from this list.
 */
export const configSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080, description: 'HTTP port' },
    HOST: { type: 'string', default: '0.0.0.0', description: 'Interface to listen on' },
    DATABASE_URL: {
      type: 'string',
      default: 'sqlite:./data/roster.sqlite',
      pattern: '^(sqlite:|mysql://|mariadb://)',
      description: 'sqlite:<path> (embedded, default) or mysql://user:pass@host:port/db',
    },
    PUBLIC_BASE_URL: {
      type: 'string',
      pattern: '^https?://',
      description: 'Absolute URL clients reach Roster at; used in SCIM meta.location. Default http://localhost:PORT',
    },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    BODY_LIMIT_BYTES: {
      type: 'integer',
      minimum: 1024,
      default: 1048576,
      description: 'Largest accepted request body',
    },
    REQUEST_BODY_TIMEOUT_MS: {
      type: 'integer',
      minimum: 100,
      maximum: 3600000,
      default: 30000,
      description: 'How long a client may take to send a request body before it gets 408',
    },
    JSON_MAX_DEPTH: {
      type: 'integer',
      minimum: 2,
      maximum: 1000,
      default: 32,
      description: 'Deepest accepted JSON nesting',
    },
    DB_POOL_MAX: { type: 'integer', minimum: 1, default: 10, description: 'MySQL/MariaDB pool size' },
    DB_ACQUIRE_TIMEOUT_MS: {
      type: 'integer',
      minimum: 100,
      default: 2000,
      description: 'How long a request waits for a database connection before answering 503',
    },
    SHUTDOWN_TIMEOUT_MS: {
      type: 'integer',
      minimum: 0,
      default: 10000,
      description: 'Bound on in-flight requests at SIGTERM',
    },
    METRICS_ENABLED: { type: 'boolean', default: true, description: 'Serve GET /metrics' },
    METRICS_TOKEN: {
      type: 'string',
      minLength: 16,
      description: 'When set, /metrics requires Authorization: Bearer <it>',
    },
    SCIM_RATE_LIMIT: {
      type: 'integer',
      minimum: 0,
      default: 200,
      description: 'SCIM requests per second per token (burst twice that); 0 turns the limit off',
    },
    SCIM_QUERY_TIMEOUT_MS: {
      type: 'integer',
      minimum: 0,
      default: 5000,
      description: 'MySQL/MariaDB: time limit of one SCIM list statement (400 tooMany past it); 0 turns it off',
    },
    SCIM_MEMBERS_PER_RESPONSE: {
      type: 'integer',
      minimum: 1,
      default: 10000,
      description: 'Most group members one SCIM response carries (a list page in total, or one group)',
    },
    AREA_CATALOGUE_FILE: {
      type: 'string',
      minLength: 1,
      description: "JSON file with the deployment's own area catalogue; default: seed 002's areas",
    },
    TRUST_PROXY: { type: 'string', default: 'loopback', description: "express 'trust proxy' setting" },
    SMTP_URL: {
      type: 'string',
      pattern: '^smtps?://[^/?#\\s]+',
      description: 'smtp://user:pass@host:port or smtps://…; unset: mails are logged and kept in the outbox, not sent',
    },
    MAIL_FROM: {
      type: 'string',
      minLength: 3,
      pattern: '@',
      default: 'Roster <no-reply@localhost>',
      description: 'From address of the mails Roster sends',
    },
    INVITE_TTL: {
      type: 'string',
      pattern: '^\\s*\\d{1,6}[smhd]\\s*$',
      default: '7d',
      description: 'How long an invitation link stays valid: a number with a unit s, m, h or d',
    },
    SESSION_SECRET: {
      type: 'string',
      minLength: 32,
      description:
        'Signs session cookies; 32+ characters, the same in every process. Unset: a random one per process (sessions end at restart)',
    },
    SESSION_IDLE_TIMEOUT: {
      type: 'string',
      pattern: '^\\s*\\d{1,6}[smhd]\\s*$',
      default: '1h',
      description: 'A session unused this long ends: a number with a unit s, m, h or d',
    },
    SESSION_MAX_AGE: {
      type: 'string',
      pattern: '^\\s*\\d{1,6}[smhd]\\s*$',
      default: '12h',
      description: 'A session ends this long after sign-in however active it is',
    },
    SAML_SP_KEY_FILE: {
      type: 'string',
      minLength: 1,
      description:
        'PEM private key of the SAML service provider: signs AuthnRequests, decrypts encrypted assertions. With SAML_SP_CERT_FILE',
    },
    SAML_SP_CERT_FILE: {
      type: 'string',
      minLength: 1,
      description:
        'PEM certificate of that key, published in the SP metadata for signing and encryption. With SAML_SP_KEY_FILE',
    },
    AUTH_RATE_LIMIT: {
      type: 'integer',
      minimum: 0,
      default: 300,
      description: 'Requests per minute per client address to /auth (sign-in, logout); 0 turns the limit off',
    },
    JOB_LEASE_MS: {
      type: 'integer',
      minimum: 1000,
      default: 30000,
      description:
        'How long a job stays with the process running it after its last chunk started; after that another process resumes it',
    },
    JOB_POLL_MS: {
      type: 'integer',
      minimum: 10,
      default: 1000,
      description: 'How often an idle job worker looks for queued jobs',
    },
  },
} as const;
