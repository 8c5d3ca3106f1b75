// Activity factory in the samples' style: dependencies in, named activities out. The names
// are what people read in `temporal workflow show` and the Web UI.
// Over 300 lines because every activity, its heartbeats and its command slot are in one place,
// each a few lines: the list to read against the workflow's history.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import { recordCommand } from './metrics';
import { normaliseForComparison } from '../domain/matching';
import { redact, redactCounted, secretsFromEnv } from '../domain/redact';
import { registryKeyEnvNames, type ResolvedProviders } from '../domain/registry';
import { SandboxPolicySchema, type ArtifactRef, type ChangeSet, type Command, type SandboxPolicy, type StepOutcome } from '../domain/schema';
import { applyChangeSet, previewChangeSet } from './apply';
import type { WrittenFile } from './changeDiff';
import { detectForChange } from './playbooks';
import { introducedErrors } from './syntaxGate';
import { restoreTestedPaths } from './testedTree';
import { withSandboxRetries } from './sandboxRetry';
import { contentsOf, createStepRunner, refusedText, SETUP_TIMEOUT_SEC } from './steps';
import { openArtifactStore } from './s3Artifacts';
import { childUsage, type ChildUsageRequest, type ChildUsageResult } from './children';
import { readBatchTasks, type ReadBatchTasksRequest } from './batchTasks';
import { readQuotas } from './quota';
import type { QuotaState } from '../domain/quota';
import { CommandSlots } from './commandSlots';
import { describeCommit } from './commitDiff';
import { settleUnpushed } from './unpushed';
import { formatBytes, runCommand, type RunCommandResult } from './commands';
import type { WorkerLoad } from '../domain/liveness';
import { restoreGit, snapshotGit } from './gitGuard';
import { describeSandbox, effectiveLimits, enforcementOf, forgetWorkspace, noteWritten, releaseSandbox, repoCacheDir, sandboxed, sandboxNotes, trackWrites, type SandboxSetting } from './sandbox';
import { generateChange } from './llm';
import { buildPrompt } from './prompt';
import { repomapCacheDirOf } from './repomap/cache';
import { registryOf, resolveProviders, type ResolveProvidersRequest } from './providers';
import { applyAndCheck, foldedBefore, runOf } from './applyAndCheck';
import type {
  ActivityDeps,
  ApplyAndCheckRequest,
  ApplyAndCheckResult,
  ApplyChangeRequest,
  ApplyChangeResult,
  BuildPromptRequest,
  BuiltPrompt,
  CommitRequest,
  CommitResult,
  GenerateChangeRequest,
  GenerateChangeResult,
  PreparedWorkspace,
  PrepareWorkspaceRequest,
  PreviewChangesRequest,
  RunCheckRequest,
  Shown,
  RunTestsRequest,
  RunTestsResult,
  WorkspaceHandle,
} from './types';
import * as ws from './workspace';

export function createActivities(deps: ActivityDeps) {
  /** Env var names of provider keys: the ones named, plus every key the worker's registry holds. */
  const keyNames = (names: string[] = []) => [...new Set([...names, ...registryKeyEnvNames(registryOf(deps))])];
  /** Values to redact: secret-looking vars of the worker's env, plus the provider keys. */
  const secrets = (names: string[] = []) => secretsFromEnv(deps.env, keyNames(names));
  // Every text artifact (prompts, answers, diffs, reports) is stored with the worker's secrets masked.
  const store = openArtifactStore({ artifacts: deps.artifacts, dir: deps.artifactDir, env: deps.env }, secrets());

  const sandbox: SandboxSetting = deps.sandbox ?? { mode: 'off', kind: 'none', hide: [], readOnly: [] };
  const commandSlots = new CommandSlots(deps.maxCommands ?? Math.max(1, os.availableParallelism()));

  /**
   * Removes a workspace; its sandbox uid goes back to the host's pool and its cgroup is removed
   * (a long-lived worker would otherwise hold one of each per workspace it ever made).
   */
  async function release(workspace: WorkspaceHandle): Promise<void> {
    await ws.releaseWorkspace(workspace);
    await releaseSandbox(sandbox, workspace.dir);
  }

  /**
   * Runs `work` heartbeating every WEAVER_HEARTBEAT_MS (the SDK throttles what reaches the
   * server): every workspace activity does, so a dead worker is noticed within the heartbeat
   * timeout however long git, a repository map or a suite takes. What the beats say (e.g.
   * "queued behind 2 commands", the activity's heartbeat details) is set with noteFor(ctx).
   */
  async function beating<T>(work: () => Promise<T>): Promise<T> {
    const ctx = Context.current();
    let details: string | undefined;
    const beat = () => (details === undefined ? ctx.heartbeat() : ctx.heartbeat(details));
    // A note goes with the next periodic beat, not at once: an activity done within one period
    // sends none (each beat is a server write, and a billable action); a longer one shows it with
    // its first beat, then as the SDK's throttle lets beats through.
    notes.set(ctx, (d) => {
      details = d;
    });
    const timer = setInterval(beat, deps.heartbeatMs ?? 1000);
    try {
      return await work();
    } finally {
      clearInterval(timer);
      notes.delete(ctx);
    }
  }
  const notes = new WeakMap<Context, (details?: string) => void>();
  const noteFor = (ctx: Context) => notes.get(ctx) ?? (() => undefined);

  /**
   * Runs a command of the repository's (setup) or of the model's (tests) in a workspace, in the
   * worker's sandbox: heartbeating, killed whole on cancel, without secrets in its env, its
   * redacted output stored whole as an artifact. A limit it hit, a change it made to `.git`
   * (undone here) and what its process tree used (`resources`) come back with the result.
   */
  async function runInWorkspace(kind: string, phase: 'setup' | 'test', command: Command, cwd: string, timeoutSec: number, secretEnvNames?: string[], policy?: SandboxPolicy, stepName?: string) {
    const ctx = Context.current();
    const note = noteFor(ctx);
    // Its turn first (WEAVER_MAX_COMMANDS): a suite waiting here still heartbeats, and says why.
    let release: () => void;
    try {
      release = await commandSlots.acquire({
        signal: ctx.cancellationSignal,
        onWait: (ahead) => note(`queued behind ${ahead} command${ahead === 1 ? '' : 's'} (WEAVER_MAX_COMMANDS=${commandSlots.limit})`),
      });
    } catch {
      throw new CancelledFailure(`${phase} command cancelled while waiting for its turn`);
    }
    try {
      note(stepName ? `running the ${stepName} step` : `running the ${phase} command`);
      return await withSandboxRetries(() => runBoxed(kind, phase, command, cwd, timeoutSec, secretEnvNames, policy), note);
    } finally {
      release();
    }
  }

  /** The toolchain caches a workspace's commands share with its repository's other tasks on this host. */
  async function toolchainCacheOf(cwd: string): Promise<string | undefined> {
    const repo = await ws.repoOfWorkspace(cwd);
    return repo && repoCacheDir(deps.workspaceRoot, repo);
  }

  async function runBoxed(kind: string, phase: 'setup' | 'test', command: Command, cwd: string, timeoutSec: number, secretEnvNames?: string[], policy?: SandboxPolicy) {
    const ctx = Context.current();
    const logFile = await store.scratchPath(`${kind}.log`);
    const before = await snapshotGit(cwd);
    const boxPolicy = policy ?? SandboxPolicySchema.parse({});
    // Bounded with or without a sandbox: the bound protects the worker and the store, not the host.
    const maxOutputMb = effectiveLimits(sandbox, boxPolicy.limits).limits.maxOutputMb;
    const box = await sandboxed({
      setting: sandbox,
      policy: boxPolicy,
      phase,
      dir: cwd,
      command,
      env: deps.env,
      // The registry's key names too, whatever a task lists in `sandbox.env`.
      secretEnvNames: keyNames(secretEnvNames),
      scratchHome: path.join(path.dirname(cwd), 'home'),
      cacheDir: await toolchainCacheOf(cwd),
    });
    const r = await runCommand({
      command: box.command,
      cwd,
      timeoutSec,
      logFile,
      signal: ctx.cancellationSignal,
      secrets: secrets(secretEnvNames),
      env: box.env,
      // Dies with this worker; one run at a time per workspace (the lock sits beside the checkout,
      // not in it); recorded under the worker's slot for its successor to clean up.
      dieWithWorker: true,
      lockFile: ws.commandLockFile(cwd),
      recordDir: deps.commandRecordDir,
      // Without a cgroup counting them, CPU time and memory come from sampling /proc.
      sampleUsageMs: box.sampleUsageMs,
      maxOutputBytes: maxOutputMb * MIB,
    }).catch(async (err: unknown) => {
      // Never ran (or its log failed): the sandbox's cgroup, network and watches go anyway.
      await box.dispose();
      throw err;
    });
    // Measured for every command here (setup, tests, any step): wall, CPU and peak memory of its whole tree.
    const { limit, resources, egressRefused, sandboxFailed } = await box.finish(r);
    // A sandbox that failed before the command, or a cancel, is no step's duration.
    if (!sandboxFailed && !r.cancelled) recordCommand(kind, { durationMs: r.durationMs, timedOut: r.timedOut, passed: r.exitCode === 0 && !r.timedOut }, limit);
    // A workspace gone while the command ran (its disk wiped) stays gone: nothing to put back.
    const gitChanged = existsSync(path.join(cwd, '.git')) ? await restoreGit(cwd, before) : [];
    const violation = gitChanged.length ? `the command changed ${gitChanged.slice(0, 5).join(', ')}${gitChanged.length > 5 ? ', …' : ''} (refused and undone: git must not run repository code)` : undefined;
    const log: ArtifactRef = await store.adoptFile(kind, logFile);
    return { r, log, limit, violation, resources, egressRefused, sandboxFailed, dropped: droppedNote(r, maxOutputMb) };
  }

  /** prepareWorkspace's work: clone, branch, then the setup command (in its turn, like tests). */
  async function prepare(req: PrepareWorkspaceRequest): Promise<WorkspaceHandle> {
    const ctx = Context.current();
    // From the shared store: downloaded here when the bundle was made on another host.
    const restore = req.restoreBundle ? await store.localPath(req.restoreBundle) : undefined;
    const handle = await ws.prepareWorkspace(deps, req, { signal: ctx.cancellationSignal, restore });
    // A fresh clone (maybe where a lost one was): nothing known of it is true any more.
    forgetWorkspace(handle.dir);
    // A branch restored from its bundle is only pushed: no setup, and no playbook read from the
    // model's own commit (its .weaver/playbook.yaml could say anything).
    if (restore) return finishPrepare(req, handle, true);
    if (req.checks) {
      try {
        const setUp = await steps.setUp(req, handle.dir);
        return await finishPrepare(req, { ...handle, ...setUp }, (setUp.setupSteps ?? []).every((s) => s.status === 'skipped'));
      } catch (err) {
        // Cancelled in a setup step (the task, or a parallel-all candidate being checked): the
        // clone goes, as it does when the clone itself is cancelled; no one else would remove it.
        if (ctx.cancellationSignal.aborted) {
          await ws.releaseWorkspace(handle).catch((e: unknown) => log.warn('a cancelled workspace could not be removed', { dir: handle.dir, error: String(e) }));
        }
        throw err;
      }
    }
    if (req.setupCommand) {
      const { r, log, limit, violation, egressRefused } = await runInWorkspace('setup-log', 'setup', req.setupCommand, handle.dir, SETUP_TIMEOUT_SEC, req.secretEnvNames, req.sandbox);
      if (r.cancelled) {
        // The clone goes, as in a playbook's setup step (no one else would remove it).
        await ws.releaseWorkspace(handle).catch((e: unknown) => Context.current().log.warn('a cancelled workspace could not be removed', { dir: handle.dir, error: String(e) }));
        throw new CancelledFailure('setup command cancelled; process group killed');
      }
      if (r.exitCode !== 0 || violation) {
        const why = violation ?? limit ?? (r.timedOut ? 'timed out' : `exited with ${r.exitCode}`);
        throw ApplicationFailure.create({
          type: 'SetupFailed',
          nonRetryable: !!violation,
          message: `setup command ${why}${refusedText(egressRefused, '; ')} (log ${log.ref}):\n${r.tail.slice(-1500)}`,
        });
      }
    }
    return finishPrepare(req, handle, !req.setupCommand);
  }

  /** `untouched`: no command ran in the checkout (no setup step, or a branch restored from its bundle). */
  async function finishPrepare(req: PrepareWorkspaceRequest, handle: WorkspaceHandle, untouched: boolean): Promise<WorkspaceHandle> {
    // What a rollback returns to: the workspace as setup left it (also after a rebuild elsewhere).
    await ws.recordSetupState(handle, { untouched });
    // The worker's own patience for its queue travels with the handle (the workflow cannot read env).
    // What the worker changed in the task's policy (caps, env names, shared network), once per workspace.
    const changed = sandboxNotes(sandbox, req.sandbox ?? SandboxPolicySchema.parse({}));
    return { ...handle, sandbox: describeSandbox(sandbox), sandboxEnforcement: enforcementOf(sandbox), ...(changed.length ? { sandboxNotes: changed } : {}), ...(deps.queueCheckSec ? { queueCheckSec: deps.queueCheckSec } : {}) };
  }

  /**
   * commitAndPush's work: commit the tested paths, push or bundle, describe the commit, and remove
   * the workspace once the work is safe elsewhere. `kept`: what the record left by that removal
   * holds, for a retry that finds the clone gone (commitAndPush's result, or the folded activity's).
   */
  async function commitWork(req: CommitRequest, kept: (r: CommitResult) => object): Promise<CommitResult> {
    // The commit may put paths back in the tree (one refused for holding a secret).
    forgetWorkspace(req.workspace.dir);
    const r = await ws.commitAndPush(req, secrets(req.secretEnvNames), deps);
    if (!r.pushed && req.bundle) r.bundle = await ws.bundleBranch(store, req.workspace);
    // A bundle of an unpushed commit outlives the run's history only through its record (unpushed.ts).
    const ctx = Context.current();
    if (req.workflowId) {
      const at = { workflowId: req.workflowId, runId: ctx.info.workflowExecution?.runId ?? 'unknown', dir: req.workspace.dir, branch: req.workspace.branch, repo: await ws.repoOfWorkspace(req.workspace.dir) };
      await settleUnpushed(store, at, r, (message, error) => ctx.log.warn(message, { error: error.message }));
    }
    // What a person approves: the commit's diffstat and diff. Informational, so a failure to
    // read them is logged and never fails a commit that is made (and maybe pushed) already.
    try {
      Object.assign(r, await describeCommit(store, req.workspace, r.commit));
    } catch (err) {
      ctx.log.warn('could not describe the commit', { commit: r.commit, error: (err as Error).message });
    }
    if (req.release && (r.pushed || (req.release === 'bundled' && r.bundle))) {
      try {
        await ws.recordReleasedCommit(req.workspace, kept({ ...r, released: true }));
        await release(req.workspace);
        r.released = true;
      } catch (err) {
        r.releaseError = (err as Error).message;
      }
    }
    return r;
  }

  const steps = createStepRunner({ runInWorkspace, secrets });

  /** Writes the change set into the workspace, confined to it; all or nothing. */
  async function applyChange(req: ApplyChangeRequest): Promise<ApplyChangeResult> {
    ws.openWorkspace(req.workspace);
    const { change, shown } = fromLegacy(await store.readJson<ChangeSet | LegacyChangeSet>(req.change), req.shown);
    // The files as they were, for the syntax gate: an error that was there before is not the change's.
    const before = req.checks ? await contentsOf(req.workspace.dir, change.files.map((f) => f.path)) : undefined;
    // Written by the worker: handed over to the sandbox's uid, and their size counted, before the next command.
    const written: WrittenFile[] = [];
    const r = await trackWrites(req.workspace.dir, change.files.map((f) => f.path), () => applyChangeSet(req.workspace.dir, change, { shown, allowTestChanges: req.allowTestChanges }, written));
    // Feedback for the model and the history: bounded whatever the file's lines look like, and
    // masked as the prompt masks them (the closest lines quote the file).
    const values = secrets();
    const masked = (lines: string[]) => lines.map((l) => redactCounted(l, values, { code: true }).text);
    const bounded = { ...r, errors: boundLines(masked(r.errors), MAX_APPLY_ERRORS_CHARS), notes: boundLines(masked(r.notes), 2_000) };
    if (!r.applied) return bounded;
    const diff = await ws.diffWorkspace(store, req.workspace, r.files, written);
    if (!req.checks || !before) return { ...bounded, diff };
    const after = await contentsOf(req.workspace.dir, r.files);
    const syntaxErrors = await introducedErrors(
      r.files.filter((f) => after.has(f)).map((f) => ({ path: f, before: before.get(f) ?? null, after: after.get(f) ?? null })),
    );
    const playbook = detectForChange(req.workspace.dir, req.checks.playbook, r.files, before);
    return { ...bounded, diff, ...(syntaxErrors.length ? { syntaxErrors: syntaxErrors.slice(0, 10) } : {}), ...(playbook ? { playbook } : {}) };
  }

  /** One playbook step in the sandbox; what it rewrote of the change put back. */
  async function checkStep(req: RunCheckRequest): Promise<StepOutcome> {
    ws.openWorkspace(req.workspace);
    const out = await steps.runStep(req.step, req.workspace.dir, req.timeoutSec, req.secretEnvNames, req.sandbox);
    // Gone while the step ran (its disk wiped, its host going): the outcome says nothing of the change.
    ws.openWorkspace(req.workspace);
    // Steps check, they do not write: what a step rewrote of the change is put back, so the
    // next step and the commit see the content that was checked.
    const altered = await restoreTestedPaths(req.workspace);
    noteWritten(req.workspace.dir, altered);
    return altered.length ? { ...out, altered: altered.slice(0, 50) } : out;
  }

  async function rollback(workspace: WorkspaceHandle): Promise<void> {
    // Back to the setup state: what was written back is handed over before the next command;
    // without that list (the old way, a failure midway) the next command walks the tree.
    let wrote: string[] | undefined;
    try {
      await ws.rollbackWorkspace(workspace, (paths) => (wrote = paths));
    } finally {
      if (wrote) noteWritten(workspace.dir, wrote);
      else forgetWorkspace(workspace.dir);
    }
  }

  const promptFor = (req: BuildPromptRequest) => buildPrompt(store, req, { cacheDir: repomapCacheDirOf(deps), secrets: secrets(req.secretEnvNames) });

  /**
   * The first attempt's prompt on a workspace just prepared (runs since FOLD_ROUND_TRIPS): one
   * buildPrompt activity fewer. None when nothing could check a change (the task ends unasked)
   * or building it failed: the workflow then builds it as usual, where a failure is handled.
   */
  async function firstPrompt(req: Omit<BuildPromptRequest, 'workspace'>, handle: WorkspaceHandle): Promise<{ prompt?: BuiltPrompt }> {
    if (handle.playbook?.nothingAnywhere) return {};
    try {
      return { prompt: await promptFor({ workspace: handle, ...req }) };
    } catch (err) {
      Context.current().log.warn('could not build the first prompt with the workspace; the workflow builds it', { error: (err as Error).message });
      return {};
    }
  }

  const activities = {
    /** Clone, branch, run the setup command. Runs on the shared queue; returns this worker's queue. */
    async prepareWorkspace(req: PrepareWorkspaceRequest): Promise<PreparedWorkspace> {
      // A big clone takes longer than the heartbeat timeout: beat while git works, and let a
      // cancellation kill git (the clone's whole process group) instead of waiting for it.
      return beating(async () => {
        const handle = await prepare(req);
        return req.prompt ? { ...handle, ...(await firstPrompt(req.prompt, handle)) } : handle;
      });
    },

    /** Answers the workflow's liveness check (src/domain/liveness.ts) from this worker's own never-busy queue. */
    async workspaceAlive(): Promise<WorkerLoad> {
      return { workspaceQueue: deps.workspaceQueue, pid: process.pid, commands: commandSlots.load() };
    },

    /** Task, ranked repository map, files, last failure → prompt artifact, within the token budget. */
    async buildPrompt(req: BuildPromptRequest): Promise<BuiltPrompt> {
      ws.openWorkspace(req.workspace);
      return promptFor(req);
    },

    /**
     * The task's providers against the worker's registry (WEAVER_PROVIDERS), once at workflow
     * start; an unknown id, a model not allowed or a keyed provider sent elsewhere is refused
     * (non-retryable `ProviderNotAllowed`).
     */
    async resolveProviders(req: ResolveProvidersRequest): Promise<ResolvedProviders> {
      return resolveProviders(deps, req);
    },

    /** One provider call; a bad answer is an outcome, a failed call a typed failure. */
    async generateChange(req: GenerateChangeRequest): Promise<GenerateChangeResult> {
      return generateChange(deps, store, req);
    },

    /** Writes the change set into the workspace, confined to it; all or nothing. */
    async applyChange(req: ApplyChangeRequest): Promise<ApplyChangeResult> {
      return applyChange(req);
    },

    /** applyChange, then the playbook's steps while they pass, in one activity (./applyAndCheck.ts); safe to run again. */
    async applyChangeAndCheck(req: ApplyAndCheckRequest): Promise<ApplyAndCheckResult> {
      // A retry after this activity committed, pushed and removed the clone: the result it could not report.
      const done = req.commit?.release ? foldedBefore(await ws.releasedCommit(req.workspace), req) : undefined;
      if (done) return done;
      // Gone from this worker: lost (rebuilt by the workflow), before any record of it is read or written.
      ws.openWorkspace(req.workspace);
      return applyAndCheck(req, {
        commit: commitWork,
        apply: applyChange,
        check: checkStep,
        rollback,
        restoreTested: async (workspace) => {
          ws.openWorkspace(workspace);
          noteWritten(workspace.dir, await restoreTestedPaths(workspace));
        },
      });
    },

    /**
     * What each candidate change would make of the files, as one digest per change (null: it
     * does not apply). Consensus compares these: same resulting files, same vote.
     */
    async previewChanges(req: PreviewChangesRequest): Promise<(string | null)[]> {
      ws.openWorkspace(req.workspace);
      const digests: (string | null)[] = [];
      for (const ref of req.changes) {
        const change = await store.readJson<ChangeSet>(ref);
        const p = await previewChangeSet(req.workspace.dir, change, { shown: req.shown, allowTestChanges: req.allowTestChanges });
        if (!p.ok) {
          digests.push(null);
          continue;
        }
        const hash = createHash('sha256');
        for (const f of [...p.files].sort((a, b) => a.path.localeCompare(b.path))) {
          hash.update(`${f.path}\0${f.content === null ? '(deleted)' : normaliseForComparison(f.path, f.content)}\0`);
        }
        digests.push(hash.digest('hex').slice(0, 16));
      }
      return digests;
    },

    /** Runs the test command with a timeout; the whole log becomes an artifact, history gets a tail. */
    async runTests(req: RunTestsRequest): Promise<RunTestsResult> {
      ws.openWorkspace(req.workspace);
      if (!req.command) {
        // Runs started before playbooks passed here; a workflow never asks this now (no_checks).
        return { passed: false, exitCode: null, timedOut: false, durationMs: 0, tail: 'no_checks: no test command configured' };
      }
      const { r, log, limit, violation, resources, dropped, egressRefused } = await runInWorkspace('test-log', 'test', req.command, req.workspace.dir, req.timeoutSec, req.secretEnvNames, req.sandbox);
      // Reported as a cancellation: the sandbox and everything in it are already dead.
      if (r.cancelled) throw new CancelledFailure('test run cancelled; process group killed');
      // Gone while the tests ran (its disk wiped, its host going): the outcome says nothing of the change.
      ws.openWorkspace(req.workspace);
      // What the model reads as feedback: the limit or the refusal comes first.
      const notes = [violation && `weaver: ${violation}`, limit && `weaver: ${limit}`, refusedText(egressRefused, 'weaver: '), dropped].filter(Boolean).join('\n');
      return {
        passed: r.exitCode === 0 && !r.timedOut && !violation,
        exitCode: r.exitCode,
        timedOut: r.timedOut,
        durationMs: r.durationMs,
        tail: redact(notes ? `${notes}\n${r.tail}` : r.tail, secrets(req.secretEnvNames)),
        log,
        ...(limit ? { limit } : {}),
        ...(violation ? { violation } : {}),
        resources,
        ...(egressRefused ? { egressRefused } : {}),
      };
    },

    /** One playbook step (lint, typecheck, test, build, …) in the sandbox; its whole log becomes an artifact. */
    async runCheck(req: RunCheckRequest): Promise<StepOutcome> {
      return checkStep(req);
    },

    async rollbackWorkspace(workspace: WorkspaceHandle): Promise<void> {
      return rollback(workspace);
    },

    async commitAndPush(req: CommitRequest): Promise<CommitResult> {
      // A retry after this activity pushed and removed the clone: the result it could not report.
      // Only this run's: a workspace is named by the workflow id, which a later run may reuse.
      const done = req.release ? await ws.releasedCommit<(CommitResult | ApplyAndCheckResult) & { runId?: string }>(req.workspace) : undefined;
      if (done && (done.runId === undefined || done.runId === runOf())) {
        // (Left by the folded activity's commit: its commit.)
        const { runId: _, ...r } = 'applied' in done ? { ...done.committed!, runId: done.runId } : done;
        return r;
      }
      return commitWork(req, (r) => ({ ...r, runId: runOf() }));
    },

    /** Merges the children's branches into the parent's, in subtask order; conflicts are outcomes. */
    async mergeBranches(req: { workspace: WorkspaceHandle; sources: ws.MergeSource[] }): Promise<ws.MergeResult[]> {
      // A source given as an artifact reference is a git bundle in the shared store.
      const sources = await Promise.all(req.sources.map(async (s) => (s.source.startsWith('sha256:') ? { ...s, source: await store.localPath(s.source) } : s)));
      forgetWorkspace(req.workspace.dir);
      return ws.mergeBranches(req.workspace, sources, deps.env);
    },

    async releaseWorkspace(workspace: WorkspaceHandle): Promise<void> {
      await release(workspace);
    },

    /** A child that ended without a result (terminated, timed out): its spend, for its parent's usage and budget. */
    async childUsage(req: ChildUsageRequest): Promise<ChildUsageResult> {
      const ctx = Context.current();
      return childUsage(ctx.client, req, { beat: () => ctx.heartbeat() });
    },

    /** A page of a batch's stored task list, and its length. */
    async readBatchTasks(req: ReadBatchTasksRequest): Promise<{ tasks: unknown[]; total: number }> {
      return readBatchTasks(store, req);
    },

    /** The quotas its providers last reported (src/domain/quota.ts), for a batch or decomposition about to launch children. */
    async readQuotas(req: { providers: string[] }): Promise<QuotaState[]> {
      return readQuotas(Context.current().client, req.providers);
    },

    /** Stores a JSON document (report, events) and returns its reference. */
    async storeArtifact(req: { kind: string; content: string }): Promise<ArtifactRef> {
      return store.put(req.kind, redact(req.content, secrets()));
    },
  };
  // Every workspace activity heartbeats, whatever it does (src/domain/liveness.ts).
  for (const name of WORKSPACE_ACTIVITIES) {
    const work = activities[name] as (...args: unknown[]) => Promise<unknown>;
    (activities as Record<string, unknown>)[name] = (...args: unknown[]) => beating(() => work(...args));
  }
  return activities;
}

/**
 * The activities the workflow sends to a workspace queue (workflows/activityProxies.ts
 * onWorkspace): each one heartbeats, so a dead worker is noticed within its heartbeat timeout.
 */
export const WORKSPACE_ACTIVITIES = ['buildPrompt', 'applyChange', 'applyChangeAndCheck', 'previewChanges', 'rollbackWorkspace', 'commitAndPush', 'releaseWorkspace', 'mergeBranches', 'runTests', 'runCheck'] as const;

export type Activities = ReturnType<typeof createActivities>;

const MIB = 1024 * 1024;

/** Said with the tail when the log lost its middle: the model and a person know the log is cut. */
function droppedNote(r: RunCommandResult, maxOutputMb: number): string | undefined {
  if (!r.droppedBytes) return undefined;
  return `weaver: the output passed sandbox.limits.maxOutputMb (${maxOutputMb} MiB): ${formatBytes(r.droppedBytes)} dropped from the middle of the log; its first and last ${formatBytes((maxOutputMb * MIB) / 2)} are kept`;
}

/** Apply errors (closest lines included) travel through history and into the next prompt. */
const MAX_APPLY_ERRORS_CHARS = 12_000;
const MAX_LINE_CHARS = 300;

/** Long lines cut, then whole entries kept while they fit; the rest counted. */
function boundLines(items: string[], maxChars: number): string[] {
  const out: string[] = [];
  let used = 0;
  for (const [i, item] of items.entries()) {
    const cut = item
      .split('\n')
      .map((l) => (l.length > MAX_LINE_CHARS ? `${l.slice(0, MAX_LINE_CHARS)}… (${l.length} characters)` : l))
      .join('\n');
    if (used + cut.length > maxChars) {
      out.push(`… and ${items.length - i} more`);
      break;
    }
    out.push(cut);
    used += cut.length;
  }
  return out;
}

/** A change set written before targeted edits existed (in-flight runs at upgrade). */
interface LegacyChangeSet {
  summary: string;
  files: ({ path: string; action: 'create' | 'modify'; content: string } | { path: string; action: 'delete' })[];
}

/** Old whole-file change sets apply as they did: their model was shown (and asked for) whole files. */
function fromLegacy(change: ChangeSet | LegacyChangeSet, shown?: Shown): { change: ChangeSet; shown?: Shown } {
  const legacy = change.files.some((f) => f.action === 'create' || f.action === 'modify');
  if (!legacy) return { change: change as ChangeSet, shown };
  const files = (change as LegacyChangeSet).files.map((f) => (f.action === 'delete' ? f : { path: f.path, action: 'write' as const, content: f.content }));
  return { change: { summary: change.summary, files }, shown: Object.fromEntries(files.map((f) => [f.path, 'whole' as const])) };
}
