// Provider retry defaults (strategy.retry, strategy.fallbackOn): pure, so the worker can resolve
// them once at a run's start (src/domain/settings.ts) and the workflow keeps what it was given.
import { DEFAULT_MAX_WAIT_SEC } from './errors';

export interface RetrySettings {
  /** Calls of one provider in a row before moving on to another (when there is one to move to). */
  maxTries: number;
  initialIntervalMs: number;
  maxIntervalMs: number;
  /** How long a provider may keep failing retryably, from its first failure, before it counts as failed. */
  maxWaitSec?: number;
}

export const DEFAULT_RETRY: Required<RetrySettings> = { maxTries: 4, initialIntervalMs: 1000, maxIntervalMs: 60_000, maxWaitSec: DEFAULT_MAX_WAIT_SEC };
export const DEFAULT_FALLBACK_ON: string[] = ['rate_limit', 'server', 'timeout', 'network', 'context_length', 'schema_violation', 'auth', 'cooldown'];
