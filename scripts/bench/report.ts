// The comparison table (Markdown, to paste into the README) and the detail behind it.
import type { LoopBlocks } from './loop';
import { grouped, median, stats } from './stats';
import type { HistoryFigures } from './weaverSide';

/** One measured run of one side: a single task or a batch. */
export interface Window {
  tasks: number;
  wallMs: number;
  /** CPU of everything the side ran (Weaver: worker process tree + Temporal server; script: its process tree). */
  cpuMs: number;
  /** Weaver only: the Temporal server's part of cpuMs. */
  serverCpuMs?: number;
  /** The worker's event loop (Weaver), the script's (plain). */
  loop: LoopBlocks;
}

export interface Scenario {
  label: string;
  /** true: 1 task per window, compared in ms; false: a batch, compared in tasks/min. */
  single: boolean;
  weaver: Window[];
  plain: Window[];
}

const ratio = (x: number) => `**${x.toFixed(2)}×**`;
const range = (xs: number[], f: (x: number) => string) => {
  const s = stats(xs);
  return `${f(s.min)}–${f(s.max)}`;
};
const perMin = (w: Window) => (w.tasks * 60_000) / w.wallMs;
const cpuPerTask = (w: Window) => w.cpuMs / w.tasks;

export function comparisonTable(scenarios: Scenario[], history: HistoryFigures[]): string {
  const lines = ['| figure | Weaver | plain script | Weaver ÷ script |', '|---|---|---|---|'];
  for (const s of scenarios) {
    if (s.single) {
      const w = median(s.weaver.map((x) => x.wallMs));
      const p = median(s.plain.map((x) => x.wallMs));
      lines.push(`| ${s.label} | ${grouped(w)} ms | ${grouped(p)} ms | ${ratio(w / p)} |`);
    } else {
      const w = median(s.weaver.map(perMin));
      const p = median(s.plain.map(perMin));
      lines.push(`| ${s.label} | ${grouped(w, 1)} tasks/min | ${grouped(p, 1)} tasks/min | ${ratio(p / w)} |`);
    }
  }
  for (const s of scenarios) {
    const w = median(s.weaver.map(cpuPerTask));
    const p = median(s.plain.map(cpuPerTask));
    lines.push(`| CPU per task, ${s.label} | ${grouped(w)} ms | ${grouped(p)} ms | ${ratio(w / p)} |`);
  }
  const h = (k: keyof HistoryFigures) => grouped(median(history.map((x) => x[k])));
  lines.push(`| per task: workflow tasks · activities · local activities | ${h('workflowTasks')} · ${h('activities')} · ${h('localActivities')} | — | |`);
  lines.push(`| per task: history events · bytes · search-attribute upserts | ${h('events')} · ${h('bytes')} B · ${h('upserts')} | — | |`);
  const blocks = (ws: Window[]) => `${grouped(Math.max(...ws.map((x) => x.loop.maxMs)))} · ${grouped(median(ws.map((x) => x.loop.p99Ms)))} ms`;
  for (const s of scenarios) lines.push(`| event loop, ${s.label}: worst block · median p99 | ${blocks(s.weaver)} | ${blocks(s.plain)} | |`);
  return lines.join('\n');
}

/** min–max behind each median, and how many runs. */
export function detail(scenarios: Scenario[]): string {
  const ms = (x: number) => grouped(x);
  const out: string[] = [];
  for (const s of scenarios) {
    const side = (name: string, ws: Window[]) =>
      `  ${name.padEnd(7)} ${String(ws.length).padStart(2)} runs: ` +
      (s.single ? `wall ${range(ws.map((w) => w.wallMs), ms)} ms` : `${range(ws.map(perMin), (x) => grouped(x, 1))} tasks/min`) +
      `, CPU per task ${range(ws.map(cpuPerTask), ms)} ms` +
      (ws[0]?.serverCpuMs !== undefined ? ` (Temporal server ${range(ws.map((w) => (w.serverCpuMs ?? 0) / w.tasks), ms)} ms)` : '') +
      `, event loop's worst block ${range(ws.map((w) => w.loop.maxMs), ms)} ms`;
    out.push(s.label, side('Weaver', s.weaver), side('script', s.plain));
  }
  return out.join('\n');
}
