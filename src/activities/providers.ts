// Loads the worker's provider registry (WEAVER_PROVIDERS, YAML or JSON) at worker start and
// resolves a task's providers against it (the `resolveProviders` activity). The schema and the
// rules are pure (src/domain/registry.ts); this is the file side.
import { ApplicationFailure } from '@temporalio/activity';
import {
  defaultProviderRegistry,
  parseProviderRegistry,
  PROVIDER_NOT_ALLOWED,
  ProviderPolicyError,
  ProviderRegistryError,
  resolveTaskProviders,
  type ProviderRegistry,
  type ResolvedProviders,
} from '../domain/registry';
import type { ProviderChoice } from '../domain/schema';
import { resolveSettings, type SettingsInput } from '../domain/settings';
import { providerTaskQueue } from '../domain/quota';
import { readSettingsFile } from './configFile';
import type { ActivityDeps } from './types';

/**
 * The registry in `file` (validated: a bad one throws naming the file and each bad field), or,
 * without a file, the built-in one: `openai` with the worker's OPENAI_API_KEY.
 */
export function loadProviderRegistry(file: string | undefined): ProviderRegistry {
  if (!file) return defaultProviderRegistry();
  const source = `WEAVER_PROVIDERS=${file}`;
  const raw = readSettingsFile(file, (issue) => new ProviderRegistryError(source, [issue]));
  return parseProviderRegistry(raw, source);
}

/** One line per provider for the worker's start-up banner: ids, endpoints, key NAMES (never values). */
export function describeRegistry(registry: ProviderRegistry, env: Record<string, string | undefined>): string[] {
  return Object.entries(registry.providers).map(([id, e]) => {
    const key = e.apiKeyEnv ? `key ${e.apiKeyEnv}${env[e.apiKeyEnv] ? '' : ' (NOT SET in this worker)'}` : 'keyless';
    const limit = e.rateLimit ? `, at most ${e.rateLimit.requestsPerSecond} call(s)/s (queue ${providerTaskQueue(id)})` : '';
    return `${id}: ${e.baseURL ?? 'OpenAI API (or OPENAI_BASE_URL)'}, ${key}, models ${e.models.join(', ')}${limit}`;
  });
}

/** The worker's registry: the one it was given, else the built-in default. */
export function registryOf(deps: Pick<ActivityDeps, 'providers'>): ProviderRegistry {
  return deps.providers ?? defaultProviderRegistry();
}

export interface ResolveProvidersRequest {
  providers: ProviderChoice[];
  /** The task's limits, strategy and sandbox as given: resolved with the defaults this worker has. */
  settings?: SettingsInput;
}

/** The `resolveProviders` activity: a refusal is a non-retryable `ProviderNotAllowed`. */
export function resolveProviders(deps: ActivityDeps, req: ResolveProvidersRequest): ResolvedProviders {
  try {
    const r = resolveTaskProviders(registryOf(deps), req.providers, { inlineEndpoints: deps.inlineEndpoints });
    // Every default the run decides by, fixed here (recorded in its history), not re-read on replay.
    return req.settings ? { ...r, settings: resolveSettings(req.settings, r.providers, { defaultTreeCostUsd: deps.defaultTreeCostUsd }) } : r;
  } catch (err) {
    if (err instanceof ProviderPolicyError) {
      throw ApplicationFailure.create({ type: PROVIDER_NOT_ALLOWED, nonRetryable: true, message: err.message });
    }
    throw err;
  }
}
