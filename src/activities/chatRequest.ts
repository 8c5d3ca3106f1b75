// The chat messages and sampling fields of one provider call, shaped by the model's quirks
// (domain/models.ts quirksOf) and ordered for prompt caching: providers cache a prompt's
// longest repeated prefix (OpenAI does so by itself; endpoints taking Anthropic-style
// `cache_control` need the stable part marked), so the instructions, the task, the map and the
// files go first and the attempt's feedback last.
import { quirksOf } from '../domain/models';
import type { ProviderSpec } from '../domain/schema';

type Part = { type: 'text'; text: string; cache_control?: { type: 'ephemeral' } };
export type ChatMessage = { role: 'system' | 'user'; content: string | Part[] };

/**
 * `stableChars`: how much of `user` stays the same from one attempt to the next (the rest is
 * the attempt's feedback). A model that refuses the `system` role (o1-family) gets the
 * instructions at the head of its user message, where they stay part of the cached prefix.
 */
export function chatMessages(
  provider: Pick<ProviderSpec, 'model' | 'systemRole' | 'cacheControl'>,
  system: string,
  user: string,
  stableChars = 0,
): ChatMessage[] {
  const { systemRole } = quirksOf(provider);
  const lead = systemRole ? '' : `${system}\n\n`;
  const text = lead + user;
  const stable = lead.length + Math.min(stableChars, user.length);
  const userContent = provider.cacheControl ? marked(text, stable) : text;
  if (!systemRole) return [{ role: 'user', content: userContent }];
  return [
    { role: 'system', content: provider.cacheControl ? marked(system, system.length) : system },
    { role: 'user', content: userContent },
  ];
}

/** The text as parts, its first `stable` characters marked cacheable (nothing to mark: one plain part). */
function marked(text: string, stable: number): Part[] {
  if (stable <= 0) return [{ type: 'text', text }];
  const head: Part = { type: 'text', text: text.slice(0, stable), cache_control: { type: 'ephemeral' } };
  return stable >= text.length ? [head] : [head, { type: 'text', text: text.slice(stable) }];
}

/** `temperature` only where the model takes it (reasoning models refuse anything but the default). */
export function samplingOf(provider: Pick<ProviderSpec, 'model' | 'temperature'>): { temperature?: number } {
  return provider.temperature !== undefined && quirksOf(provider).temperature ? { temperature: provider.temperature } : {};
}
