import type { Config } from '../config/types.js';
import type { ClientConfig } from '../config/load-client.js';
import { DeployhookError } from '../errors.js';

/** Talks to a running daemon's API; every failure is one clear DeployhookError. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token;
  }

  async #request(method: string, path: string, body?: unknown): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (cause) {
      const reason = cause instanceof Error && cause.cause instanceof Error ? ` (${cause.cause.message})` : '';
      throw new DeployhookError('DAEMON_UNREACHABLE', `Could not reach deployhook at ${this.url}: is the daemon running?${reason}`, { cause });
    }
    if (response.ok) return response;
    const text = await response.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      // not JSON: keep the text
    }
    if (response.status === 401) throw new DeployhookError('API_UNAUTHORIZED', `The daemon at ${this.url} refused the API token: check api.token_env or api.token_file in the config, or --token.`);
    throw new DeployhookError('API_ERROR', `${message} (HTTP ${response.status})`);
  }

  async get<T>(path: string): Promise<T> {
    return (await (await this.#request('GET', path)).json()) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return (await (await this.#request('POST', path, body)).json()) as T;
  }

  /** A streamed text response (a followed log), chunk by chunk. */
  async *stream(path: string): AsyncGenerator<Uint8Array> {
    const response = await this.#request('GET', path);
    if (!response.body) return;
    try {
      for await (const chunk of response.body) yield chunk as Uint8Array;
    } catch (cause) {
      throw new DeployhookError('STREAM_CLOSED', `The connection to deployhook at ${this.url} closed before the run ended: is the daemon shutting down?`, { cause });
    }
  }
}

/** Where a daemon with this config answers on this machine: a wildcard listen address is reached on loopback. */
export function daemonUrl(config: Pick<Config, 'listen' | 'tls'>): string {
  const { host, port } = config.listen;
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${config.tls ? 'https' : 'http'}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** The daemon's URL and token: flags first, then the config (api.url, or the listen address, and api.token). */
export function clientFor(config: ClientConfig | undefined, flags: { url?: string | undefined; token?: string | undefined }, env: Readonly<Record<string, string | undefined>>): ApiClient {
  const token = flags.token ?? env.DEPLOYHOOK_TOKEN ?? config?.apiToken;
  if (!token) throw new DeployhookError('NO_API_TOKEN', 'No API token: configure api.token_env or api.token_file in the config (the CLI reads it from there), or pass --token.');
  const url = flags.url ?? config?.apiUrl ?? (config ? daemonUrl(config) : undefined);
  if (url === undefined) throw new DeployhookError('NO_API_URL', 'No daemon URL: pass --url or --config.');
  return new ApiClient(url, token);
}
