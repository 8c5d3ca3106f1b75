// The worker's provider registry (WEAVER_PROVIDERS): which endpoints this worker calls, with
// which of its keys, for which models, at what price (issue 8, item 3). A task names provider
// ids from it — and a model from the allowed list — but never a key, and never where a key is
// sent. Pure (zod only): the schema and the resolution rules, shared by the activities (which
// load the file and call providers) and the unit tests. Loading the file is the worker's
// (src/activities/providers.ts).
import type { TaskSettings } from './settings';
import { z } from 'zod';
import { lazySchema } from './lazySchema';
import { displayURL, INLINE_ENDPOINTS_ENV, inlineEndpointAllowed } from './endpoints';
import { ExpectedOutputTokens, formatZodIssues, PricingSchema, PromptShape, type Pricing, type ProviderChoice, type ProviderSpec } from './schema';

/** Env var names are short and mostly upper case; keys are long, mixed and prefixed. */
export function looksLikeSecret(v: string): boolean {
  if (/^(sk|gsk|xai|pk|rk)[-_]|^AIza|^ghp_|^github_pat_/.test(v)) return true;
  return v.length >= 24 && /[a-z]/.test(v) && /[A-Z]/.test(v) && /[0-9]/.test(v);
}

export const EnvVarNameSchema = lazySchema(() => z
  .string()
  .refine((v) => /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(v) && !looksLikeSecret(v), 'must be an environment variable name, not a key'));

export const HttpUrlSchema = lazySchema(() => z.string().refine((u) => /^https?:\/\/[^\s/?#]+[^\s]*$/i.test(u), 'must be an http:// or https:// URL'));

const StrictPricing = lazySchema(() => PricingSchema.strict());

/** `*` in an allowed model matches any run of characters (`gpt-4o*`, `*`). */
const isPattern = (m: string) => m.includes('*');

export const RegistryEntrySchema = lazySchema(() => z
  .strictObject({
    /** OpenAI-compatible endpoint; left out: OpenAI's API (or the worker's OPENAI_BASE_URL). */
    baseURL: HttpUrlSchema.optional(),
    /** NAME of the worker's env var holding the key sent to `baseURL` (and nowhere else); left out: keyless. */
    apiKeyEnv: EnvVarNameSchema.optional(),
    /** Models a task may ask for; the first is the default and must be a name, not a pattern. */
    models: z
      .array(z.string().min(1))
      .min(1, 'list at least one model (the first is the default)')
      .refine((ms) => !ms.length || !isPattern(ms[0]), 'the first model is the default: it must be a model name, not a pattern'),
    /** USD per million tokens: one price for every model, or a map model → price (`*`: the others). */
    pricing: z
      .union([StrictPricing, z.record(z.string().min(1), StrictPricing)], {
        error: 'must be { inputPerMTok, outputPerMTok } or a map of model name → { inputPerMTok, outputPerMTok }',
      })
      .optional(),
    contextWindow: z.number().int().min(1024).optional(),
    editFormat: z.enum(['editblock', 'whole']).optional(),
    tokenParam: z.enum(['max_tokens', 'max_completion_tokens']).optional(),
    stream: z.boolean().optional(),
    timeoutSec: z.number().positive().optional(),
    /** Default output bound; a task may set its own `maxTokens`. */
    maxTokens: z.number().int().positive().optional(),
    /** Output tokens a call usually takes, for `strategy.mode: 'cost'` estimates (default 1000, at most maxTokens). */
    expectedOutputTokens: ExpectedOutputTokens,
    temperature: z.number().min(0).max(2).optional(),
    /**
     * Calls per second to this provider, from every worker and workflow together: enforced by
     * Temporal (its calls go to the provider's own task queue, quota.ts providerTaskQueue, whose workers
     * set maxTaskQueueActivitiesPerSecond).
     */
    rateLimit: z.strictObject({ requestsPerSecond: z.number().positive().max(10_000) }).optional(),
    ...PromptShape,
  })
  .refine((p) => p.maxTokens === undefined || p.contextWindow === undefined || p.maxTokens < p.contextWindow, {
    path: ['maxTokens'],
    message: 'must be less than contextWindow (the prompt needs room too)',
  }));
export type RegistryEntry = z.infer<typeof RegistryEntrySchema>;

export const ProviderIdSchema = lazySchema(() => z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$/, 'a provider id is letters, digits and . _ : / @ - (at most 100)'));

export const ProviderRegistrySchema = lazySchema(() => z.strictObject({
  /** provider id → entry. */
  providers: z.record(ProviderIdSchema, RegistryEntrySchema),
}));
export type ProviderRegistry = z.infer<typeof ProviderRegistrySchema>;

/** Thrown for a registry that does not validate: names the source and each bad field. */
export class ProviderRegistryError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`invalid provider registry ${source}:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ProviderRegistryError';
  }
}

export function parseProviderRegistry(raw: unknown, source: string): ProviderRegistry {
  const r = ProviderRegistrySchema.safeParse(raw);
  if (!r.success) throw new ProviderRegistryError(source, formatZodIssues(r.error));
  return r.data;
}

/**
 * The registry of a worker without WEAVER_PROVIDERS: one provider, `openai` — OpenAI's API (or
 * the worker's OPENAI_BASE_URL) with the worker's OPENAI_API_KEY, any model (gpt-4o-mini by default).
 */
export function defaultProviderRegistry(): ProviderRegistry {
  return { providers: { openai: { apiKeyEnv: 'OPENAI_API_KEY', models: ['gpt-4o-mini', '*'] } } };
}

/** Thrown when a task's provider is not one the worker allows (→ ApplicationFailure `ProviderNotAllowed`). */
export class ProviderPolicyError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ProviderPolicyError';
  }
}

export const PROVIDER_NOT_ALLOWED = 'ProviderNotAllowed';

/**
 * The registry entry of a provider id. `<id>#<n>` is sample n of provider `<id>` (consensus with
 * `samples`: one provider, distinct ids so events and votes stay apart): its entry is `<id>`'s.
 */
export function registryEntry(registry: ProviderRegistry, id: string): RegistryEntry | undefined {
  const own = (k: string) => Object.prototype.hasOwnProperty.call(registry.providers, k);
  if (own(id)) return registry.providers[id];
  const base = id.replace(/#\d+$/, '');
  return base !== id && own(base) ? registry.providers[base] : undefined;
}

export function modelAllowed(entry: RegistryEntry, model: string): boolean {
  return entry.models.some((m) => m === model || (isPattern(m) && globRegExp(m).test(model)));
}

function globRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** The registry's price for `model`: the provider's one price, its entry for the model, or its `*` entry. */
export function registryPricing(entry: RegistryEntry, model: string): Pricing | undefined {
  const p = entry.pricing;
  if (!p) return undefined;
  if ('inputPerMTok' in p && 'outputPerMTok' in p && typeof p.inputPerMTok === 'number') return p as Pricing;
  const byModel = p as Record<string, Pricing>;
  return Object.prototype.hasOwnProperty.call(byModel, model) ? byModel[model] : byModel['*'];
}

/** Every env var name the registry reads a key from: kept out of commands and redacted. */
export function registryKeyEnvNames(registry: ProviderRegistry): string[] {
  return [...new Set(Object.values(registry.providers).flatMap((e) => (e.apiKeyEnv ? [e.apiKeyEnv] : [])))].sort();
}

const sameURL = (a: string | undefined, b: string | undefined) => (a ?? '').replace(/\/+$/, '') === (b ?? '').replace(/\/+$/, '');

export interface ResolvedProviders {
  /** The task's providers with the registry's settings merged in; no key, and no baseURL of the registry's. */
  providers: ProviderSpec[];
  /** Env var names of every key the worker's registry holds. */
  secretEnvNames: string[];
  /** Things the task said that the registry overrides (e.g. a price). */
  notes: string[];
  /** Every default the run decides by, resolved by the worker at start (asked for by runs since `settings-from-history`). */
  settings?: TaskSettings;
}

export interface ProviderPolicy {
  /**
   * WEAVER_INLINE_ENDPOINTS: URL patterns a task's own `baseURL` may match (src/domain/endpoints.ts).
   * Empty (the default): a task names registry providers only. A match is called without any key of the worker's.
   */
  inlineEndpoints?: readonly string[];
}

const FIX = "name a provider id from the worker's registry (WEAVER_PROVIDERS)";

const knownIds = (registry: ProviderRegistry) => {
  const known = Object.keys(registry.providers);
  return known.length ? known.join(', ') : 'none';
};

/** The refusal of a task's own endpoint: the field, the URL, the setting, the fix. */
function inlineRefusal(field: string, url: string, registry: ProviderRegistry): string {
  return `${field}: ${displayURL(url)} is not allowed by the worker (${INLINE_ENDPOINTS_ENV}); leave baseURL out and ${FIX} (known: ${knownIds(registry)}), or have the worker allow that endpoint in ${INLINE_ENDPOINTS_ENV}`;
}

/**
 * The task's providers against the registry, once at workflow start:
 * - a registry id: the registry's endpoint, key, pricing and settings; `model` from its allowed
 *   list (the first when left out); the task's `maxTokens`/`temperature` win, its other settings
 *   fill only what the registry leaves out; its pricing is ignored (the worker prices its providers);
 * - a `baseURL` of the task's own (for a registry id or not): only where the worker's
 *   WEAVER_INLINE_ENDPOINTS allows it (none by default) — prompts carry the repository, so the
 *   worker decides where they go — and then WITHOUT any key of the worker's;
 * - an id not in the registry without an allowed `baseURL`: refused.
 * The resolved specs carry a `baseURL` only when it is the task's own (keyless) endpoint.
 */
export function resolveTaskProviders(registry: ProviderRegistry, choices: ProviderChoice[], policy: ProviderPolicy = {}): ResolvedProviders {
  const problems: string[] = [];
  const notes: string[] = [];
  const providers: ProviderSpec[] = [];
  for (const [i, choice] of choices.entries()) {
    const where = `providers.${i} (${choice.id})`;
    const raw = choice as Record<string, unknown>;
    if (raw.apiKeyEnv !== undefined || raw.apiKey !== undefined) {
      problems.push(`${where}: a task may not name a key or its env var (apiKeyEnv); ${FIX}`);
      continue;
    }
    const { apiKeyEnv: _k, apiKey: _a, ...task } = raw as ProviderChoice & { apiKey?: unknown };
    const entry = registryEntry(registry, choice.id);
    // The registry's own endpoint, spelled by the task, is the registry's (with its key).
    const inline = choice.baseURL !== undefined && !(entry && sameURL(choice.baseURL, entry.baseURL));
    if (inline && !inlineEndpointAllowed(policy.inlineEndpoints, choice.baseURL!)) {
      problems.push(inlineRefusal(`providers.${i}.baseURL (${choice.id})`, choice.baseURL!, registry));
      continue;
    }
    if (!entry) {
      if (!inline || !choice.model) {
        problems.push(`${where}: not in the worker's provider registry (known: ${knownIds(registry)}); ${FIX}`);
        continue;
      }
      providers.push(clean({ ...task, model: choice.model }));
      continue;
    }
    const model = choice.model ?? entry.models[0];
    if (!modelAllowed(entry, model)) {
      problems.push(`${where}: model "${model}" is not allowed for provider "${choice.id}" (allowed: ${entry.models.join(', ')})`);
      continue;
    }
    if (choice.pricing) notes.push(`provider ${choice.id}: the task's pricing is ignored; the worker's registry prices its providers`);
    const spec = clean({
      id: choice.id,
      model,
      baseURL: inline ? choice.baseURL : undefined,
      pricing: registryPricing(entry, model),
      contextWindow: entry.contextWindow ?? task.contextWindow,
      editFormat: entry.editFormat ?? task.editFormat,
      tokenParam: entry.tokenParam ?? task.tokenParam,
      stream: entry.stream ?? task.stream,
      timeoutSec: entry.timeoutSec ?? task.timeoutSec,
      maxTokens: task.maxTokens ?? entry.maxTokens,
      expectedOutputTokens: entry.expectedOutputTokens ?? task.expectedOutputTokens,
      temperature: task.temperature ?? entry.temperature,
      // The smaller of the two budgets: a task may spend less than the operator allows, not more.
      promptBudgetTokens: smaller(task.promptBudgetTokens, entry.promptBudgetTokens),
      systemRole: entry.systemRole ?? task.systemRole,
      cacheControl: entry.cacheControl ?? task.cacheControl,
      // The registry's only: a task never picks the queue its calls wait in.
      rateLimit: entry.rateLimit,
    });
    if (spec.maxTokens !== undefined && spec.contextWindow !== undefined && spec.maxTokens >= spec.contextWindow) {
      problems.push(`${where}: maxTokens ${spec.maxTokens} must be less than the provider's contextWindow ${spec.contextWindow}`);
      continue;
    }
    providers.push(spec);
  }
  if (problems.length) throw new ProviderPolicyError(problems);
  return { providers, secretEnvNames: registryKeyEnvNames(registry), notes };
}

/** Where one call goes and with which of the worker's env vars as its key (none: keyless). */
export interface Endpoint {
  /** Absent: OpenAI's API (or the worker's OPENAI_BASE_URL). */
  baseURL?: string;
  apiKeyEnv?: string;
  /** The task's own endpoint (allowed by WEAVER_INLINE_ENDPOINTS): nothing of the worker's is sent there. */
  inline?: boolean;
}

/**
 * The endpoint and key of one provider call, from the registry by provider id — never from the
 * request. A spec's own `baseURL` is checked against the worker's allowlist again here (the
 * worker's setting may have changed since the task started) and called without any key.
 */
export function endpointFor(registry: ProviderRegistry, spec: Pick<ProviderSpec, 'id' | 'model' | 'baseURL'>, policy: ProviderPolicy = {}): Endpoint {
  const entry = registryEntry(registry, spec.id);
  if (spec.baseURL && !(entry && sameURL(spec.baseURL, entry.baseURL))) {
    if (!inlineEndpointAllowed(policy.inlineEndpoints, spec.baseURL)) throw new ProviderPolicyError([inlineRefusal(`provider "${spec.id}" baseURL`, spec.baseURL, registry)]);
    return { baseURL: spec.baseURL, inline: true };
  }
  if (!entry) throw new ProviderPolicyError([`provider "${spec.id}" is not in the worker's provider registry (known: ${knownIds(registry)}); ${FIX}`]);
  if (!modelAllowed(entry, spec.model)) {
    throw new ProviderPolicyError([`provider "${spec.id}": model "${spec.model}" is not allowed (allowed: ${entry.models.join(', ')})`]);
  }
  return { baseURL: entry.baseURL, apiKeyEnv: entry.apiKeyEnv };
}

/** Without the undefined fields (smaller history, stable equality). */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---- Runs started before the registry ----------------------------------------------------
// Their inputs named key env vars (`apiKeyEnv`), which the schema now refuses. Replaying them
// (behind `patched('provider-registry')`) parses the input without those names; the provider
// call takes keys from the worker's registry only, whatever a recorded input said.

/** A pre-registry task input without its providers' `apiKeyEnv`. */
export function withoutLegacyKeyNames(raw: unknown): unknown {
  const r = raw as { providers?: unknown } | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.providers)) return raw;
  return { ...r, providers: r.providers.map((p: unknown) => (p && typeof p === 'object' ? { ...p, apiKeyEnv: undefined } : p)) };
}

/** A pre-registry batch input, each task without its providers' `apiKeyEnv`. */
export function batchWithoutLegacyKeyNames(raw: unknown): unknown {
  const r = raw as { tasks?: unknown } | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.tasks)) return raw;
  return { ...r, tasks: r.tasks.map(withoutLegacyKeyNames) };
}

/** What a pre-registry run kept out of its commands: each provider's apiKeyEnv, else OPENAI_API_KEY. */
export function legacyKeyNames(raw: unknown): string[] {
  const providers = (raw as { providers?: { apiKeyEnv?: unknown }[] } | null)?.providers;
  if (!Array.isArray(providers)) return ['OPENAI_API_KEY'];
  return [...new Set(providers.map((p) => (typeof p?.apiKeyEnv === 'string' ? p.apiKeyEnv : 'OPENAI_API_KEY')))];
}

function smaller(a?: number, b?: number): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
