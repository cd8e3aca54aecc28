import type { Config } from '../config/types.js';
import { apiTokenProblem } from '../config/api-token.js';
import type { ClientConfig } from '../config/load-client.js';
import { DeployhookError } from '../errors.js';

/** Talks to a running daemon's API; every failure is one clear DeployhookError. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') throw new DeployhookError('BAD_API_URL', `Expected the daemon's URL as http://host:port or https://host:port (--url, api.url), but got ${JSON.stringify(url)}`);
    // Never printed, and fetch refuses them anyway: the token is how the CLI signs in.
    if (parsed.username || parsed.password) throw new DeployhookError('BAD_API_URL', `Expected the daemon's URL without a user name or password (--url, api.url): the API token signs in (--token, $DEPLOYHOOK_TOKEN, api.token_env)`);
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
    if (response.status === 401) throw new DeployhookError('API_UNAUTHORIZED', `The daemon at ${this.url} refused the API token: check api.token_env or api.token_file in the config, $DEPLOYHOOK_TOKEN, --token-file or --token.`);
    // A proxy or gateway in between that could not reach the daemon (it may be restarting).
    const code = [502, 503, 504].includes(response.status) ? 'API_UNAVAILABLE' : response.status === 404 ? 'API_NOT_FOUND' : 'API_ERROR';
    const { error } = (await this.#json(response).catch(() => ({}))) as { error?: unknown };
    if (typeof error === 'string') throw new DeployhookError(code, `${error} (HTTP ${response.status})`);
    throw new DeployhookError(code, this.#notTheDaemon(response));
  }

  /** Throws unless the answer is of `type`: anything else is not the daemon's API answering. */
  #expectType(response: Response, type: string, expected: string): void {
    if (!(response.headers.get('content-type') ?? '').startsWith(type)) throw new DeployhookError('API_ERROR', this.#notTheDaemon(response, expected));
  }

  /** The answer's JSON; anything else is not the daemon's API answering. */
  async #json(response: Response): Promise<unknown> {
    this.#expectType(response, 'application/json', 'JSON');
    try {
      return await response.json();
    } catch (cause) {
      throw new DeployhookError('API_ERROR', this.#notTheDaemon(response), { cause });
    }
  }

  #notTheDaemon(response: Response, expected = 'JSON'): string {
    return `Expected ${expected} from deployhook's API at ${this.url}, but got HTTP ${response.status} ${response.headers.get('content-type') ?? 'without a content type'}: is this the daemon's URL (--url, api.url)?`;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.#json(await this.#request('GET', path))) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return (await this.#json(await this.#request('POST', path, body))) as T;
  }

  /**
   * A streamed text response (a followed log), chunk by chunk; `opened` once the daemon has
   * answered, with the byte of the log its answer starts at (X-Log-Offset; 0 without it).
   */
  async *stream(path: string, opened: (start: number) => void = () => {}): AsyncGenerator<Uint8Array> {
    const response = await this.#request('GET', path);
    this.#expectType(response, 'text/plain', 'text');
    const start = Number(response.headers.get('x-log-offset') ?? '0');
    opened(Number.isSafeInteger(start) && start >= 0 ? start : 0);
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
  const token = flags.token ?? (env.DEPLOYHOOK_TOKEN || undefined) ?? config?.apiToken;
  if (!token) throw new DeployhookError('NO_API_TOKEN', 'No API token: configure api.token_env or api.token_file in the config (the CLI reads it from there), set $DEPLOYHOOK_TOKEN, or pass --token-file or --token.');
  // The config's token and --token-file's were checked as they were read.
  const problem = flags.token !== undefined || token === env.DEPLOYHOOK_TOKEN ? apiTokenProblem(token) : undefined;
  if (problem !== undefined) throw new DeployhookError('BAD_API_TOKEN', `${flags.token !== undefined ? '--token' : '$DEPLOYHOOK_TOKEN'}: ${problem}`);
  const url = flags.url ?? config?.apiUrl ?? (config ? daemonUrl(config) : undefined);
  if (url === undefined) throw new DeployhookError('NO_API_URL', 'No daemon URL: pass --url or --config.');
  return new ApiClient(url, token);
}
