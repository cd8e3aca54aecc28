import type { ProviderName } from '../config/types.js';
import { bitbucketServerProvider } from './bitbucket-server.js';
import { bitbucketProvider } from './bitbucket.js';
import { forgejoProvider, giteaProvider } from './gitea.js';
import { githubProvider } from './github.js';
import { createGenericProvider } from './generic.js';
import { createGitlabProvider } from './gitlab.js';
import { systemClock, type SignatureClock } from './standard-webhooks.js';
import type { ProviderAdapter } from './types.js';

export type ProviderRegistry = ReadonlyMap<string, ProviderAdapter>;

/**
 * The adapters deployhook ships, by the name used in `/hooks/<name>` and in job configs.
 * `clock` is the time and window Standard Webhooks timestamps are checked against.
 */
export function builtinProviders(clock: SignatureClock = systemClock): ProviderRegistry {
  const adapters = [githubProvider, createGitlabProvider(clock), giteaProvider, forgejoProvider, bitbucketProvider, bitbucketServerProvider, createGenericProvider(clock)] as ProviderAdapter[];
  return new Map<ProviderName, ProviderAdapter>(adapters.map((adapter) => [adapter.name, adapter]));
}
