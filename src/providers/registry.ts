import type { ProviderName } from '../config/types.js';
import { forgejoProvider, giteaProvider } from './gitea.js';
import { githubProvider } from './github.js';
import { gitlabProvider } from './gitlab.js';
import type { ProviderAdapter } from './types.js';

export type ProviderRegistry = ReadonlyMap<string, ProviderAdapter>;

/** The adapters deployhook ships, by the name used in `/hooks/<name>` and in job configs. */
export function builtinProviders(): ProviderRegistry {
  const adapters = [githubProvider, gitlabProvider, giteaProvider, forgejoProvider] as ProviderAdapter[];
  return new Map<ProviderName, ProviderAdapter>(adapters.map((adapter) => [adapter.name, adapter]));
}
