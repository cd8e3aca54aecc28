import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import yaml from 'js-yaml';
import { ConfigError, DeployhookError } from '../errors.js';
import { toConfigIssues } from './format-issues.js';
import { parseListenAddress } from './listen-address.js';
import { readApiToken } from './api-token.js';
import { secretSource } from './read-secret.js';
import { CONFIG_KEYS, configSchema } from './schema.js';
import type { Config } from './types.js';

/** The daemon's listen address and TLS, `api.url`, and the API token when it was read. */
export type ClientConfig = Pick<Config, 'listen' | 'tls'> & { apiUrl?: string; apiToken?: string };

/**
 * What the CLI needs to reach a running daemon (listen address, TLS, api.url and the API
 * token), read from the daemon's config without loading its jobs: the operator running
 * `deployhook jobs` need not have every job's webhook secret in their environment. The token
 * is read only when asked (not when `--token` or `DEPLOYHOOK_TOKEN` gives it); `api.url` always.
 */
export async function loadClientConfig(configFile: string, env: Readonly<Record<string, string | undefined>>, options: { readToken: boolean }): Promise<ClientConfig> {
  const file = resolve(configFile);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new DeployhookError('CONFIG_UNREADABLE', `Could not read the config ${file} (${code}), where the CLI finds the daemon's address and API token: pass --config with the daemon's config, or --url and --token-file (or $DEPLOYHOOK_TOKEN)`);
  }
  let document: unknown;
  try {
    document = yaml.load(text);
  } catch (error) {
    throw new ConfigError(file, [{ path: '', message: `expected a readable YAML file: ${(error as Error).message.split('\n')[0] ?? ''}` }]);
  }
  const parsed = configSchema.safeParse(document, { reportInput: true });
  if (!parsed.success) throw new ConfigError(file, toConfigIssues(parsed.error.issues, '', (path) => (path.length === 0 ? CONFIG_KEYS : undefined)));
  const raw = parsed.data;
  const listen = parseListenAddress(raw.listen) ?? { host: '127.0.0.1', port: 9000 };
  const config: ClientConfig = { listen, ...(raw.api?.url !== undefined ? { apiUrl: raw.api.url } : {}) };
  if (raw.tls !== undefined) config.tls = { cert: raw.tls.cert, key: raw.tls.key };
  const picked = raw.api === undefined ? undefined : secretSource(raw.api.token_env, raw.api.token_file, dirname(file));
  if (options.readToken && raw.api !== undefined && picked !== undefined) {
    const token = await readApiToken(picked.source, env);
    if ('problem' in token) throw new ConfigError(file, [{ path: `api.token_${picked.key}`, message: `${token.problem} (or pass --token)` }]);
    config.apiToken = token.value;
  }
  return config;
}
