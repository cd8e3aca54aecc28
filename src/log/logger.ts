import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * The daemon's own log: pino JSON lines. Secrets are never passed to it; the redaction
 * below is a second line of defence for headers and config objects.
 */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: 'deployhook',
      level: options.level ?? 'info',
      base: null,
      redact: {
        paths: ['secret', 'secrets', 'token', '*.secret', '*.secrets', '*.token', 'headers.authorization', 'headers["x-hub-signature-256"]', 'headers["x-gitlab-token"]'],
        censor: '***',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
