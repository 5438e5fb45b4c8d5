import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * JSON logs. Nothing logs request bodies or headers wholesale; the redaction list is a second
 * line of defence should a secret ever reach a log call by mistake.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          'token',
          'secret',
          'password',
          'authorization',
          'cookie',
          'SAMLResponse',
          'clientSecret',
          'id_token',
          'code',
          '*.token',
          '*.secret',
          '*.password',
          '*.authorization',
          '*.cookie',
          '*.SAMLResponse',
          '*.clientSecret',
          '*.id_token',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
