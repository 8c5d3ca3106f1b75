// Shapes exchanged between the workflow and its activities. Small by design: anything big
// travels as an ArtifactRef (design rule 3).
import type { SandboxSetting } from './sandbox';
import type { ArtifactRef, Command, Diffstat, SandboxPolicy, ProviderSpec, StepOutcome, TaskSpec, TestOutcome } from '../domain/schema';
import type { PlaybookInput, PlaybookStep, ResolvedPlaybook } from '../domain/playbook';
import type { ProviderRegistry } from '../domain/registry';

export interface ActivityDeps {
  /** Where content-addressed artifacts live: the store itself, or with `artifacts` set its local cache. */
  artifactDir: string;
  /** WEAVER_ARTIFACTS: `s3://bucket/prefix`, the object store all workers share (unset: artifactDir, shared only if mounted everywhere). */
  artifacts?: string;
  /** Where this worker clones workspaces. */
  workspaceRoot: string;
  /** Caches shared by every worker on the host (WEAVER_CACHE_DIR, checked at start); unset: `<workspaceRoot>/.cache`. */
  cacheDir?: string;
  /** This worker's own queue: workspace activities for workspaces it holds run there. */
  workspaceQueue: string;
  /** The shared queue workflows run on (WEAVER_TASK_QUEUE): where a provider's quota workflow is started. */
  workflowQueue?: string;
  /** Where API keys are read from (process.env in production). */
  env: Record<string, string | undefined>;
  /** Multiplies provider Retry-After delays (1 in production; tests shrink it). */
  retryDelayScale?: number;
  /** How often long activities heartbeat; also how fast they notice cancellation. */
  heartbeatMs?: number;
  /** WEAVER_DEV: a development machine (relaxes the repository-root policy). */
  dev?: boolean;
  /** WEAVER_REPO_ROOTS: the only directories local repositories are cloned from (unset: none, unless `dev`). */
  repoRoots?: string[];
  /** WEAVER_PUSH_REMOTES: URL or path prefixes a task may push to besides its own repository. */
  pushRemotes?: string[];
  /** How commands that run repository code are confined (src/activities/sandbox.ts), resolved at worker start. */
  sandbox?: SandboxSetting;
  /**
   * The worker's provider registry (WEAVER_PROVIDERS), loaded and validated at worker start: the
   * only source of provider keys and of the endpoints they are sent to. Absent: the built-in one.
   */
  providers?: ProviderRegistry;
  /**
   * WEAVER_INLINE_ENDPOINTS: URL patterns a task's own provider `baseURL` may match (src/domain/endpoints.ts);
   * such calls carry no key of the worker's. Absent or empty: a task names registry providers only.
   */
  inlineEndpoints?: string[];
  /** WEAVER_DEFAULT_TREE_COST_USD: the cost bound of a task's whole tree when it sets no maxCostUsd (0: none; unset: DEFAULT_TREE_COST_USD). */
  defaultTreeCostUsd?: number;
  /** WEAVER_MAX_COMMANDS: setup and test commands this worker runs at once (default: the number of CPUs). */
  maxCommands?: number;
  /** Where running commands' process groups are recorded (this worker's slot, src/workerSlot.ts): its successor kills leftovers. */
  commandRecordDir?: string;
  /** WEAVER_QUEUE_CHECK_SEC: handed to workflows with each workspace (WorkspaceHandle.queueCheckSec). */
  queueCheckSec?: number;
  /** WEAVER_FAULT_HOLD_AFTER_ANSWER_MS (crash tests only): how long a provider call waits between keeping its answer and completing. */
  holdAfterAnswerMs?: number;
}

export interface WorkspaceHandle {
  id: string;
  dir: string;
  /** The queue of the worker holding `dir`: apply/test/git activities must be sent there. */
  taskQueue: string;
  branch: string;
  baseCommit: string;
  /** The sandbox commands run in on that worker, e.g. `bubblewrap 0.8.0`, or `none`; and how its limits hold. */
  sandbox?: string;
  sandboxEnforcement?: string;
  /** How long its activities may wait in `taskQueue` before the workflow checks the worker is alive (the worker's WEAVER_QUEUE_CHECK_SEC; absent: 25 s). */
  queueCheckSec?: number;
  /**
   * What the worker changed in the task's sandbox policy, for the result's warnings: a limit
   * lowered to the worker's cap, `sandbox.env` names it does not allow, network shared with the host.
   */
  sandboxNotes?: string[];
  /** The checks this workspace runs, as the worker resolved them (runs since `playbooks`). */
  playbook?: ResolvedPlaybook;
  /** The playbook's setup steps as they ran when the workspace was prepared. */
  setupSteps?: StepOutcome[];
}

/** What the worker needs to choose a workspace's playbook (src/activities/playbooks.ts). */
export interface PlaybookRequest {
  playbook?: string | PlaybookInput;
  testCommand?: Command;
  setupCommand?: Command;
  /** For the setup steps' `when`. */
  labels?: string[];
}

export interface PrepareWorkspaceRequest {
  workflowId: string;
  repo: string;
  baseBranch?: string;
  branch: string;
  setupCommand?: Command;
  /** Env var names holding provider keys: kept out of the setup command's env and redacted. */
  secretEnvNames?: string[];
  /** The task's sandbox policy, defaults resolved (absent for runs started before it existed). */
  sandbox?: SandboxPolicy;
  /** Where the task will push (`origin` or a URL): checked against the worker's policy before any work. */
  pushRemote?: string;
  /** A rebuild: branch from the lost workspace's base commit (not the base branch's tip, which may have moved). */
  baseCommit?: string;
  /** A rebuild after a commit: the branch as the lost workspace bundled it (HEAD is set to it). */
  restoreBundle?: ArtifactRef;
  /** Resolve the playbook and run its setup steps (runs since `playbooks`; `setupCommand` is then ignored). */
  checks?: PlaybookRequest;
  /** The first attempt's prompt request (runs since FOLD_ROUND_TRIPS): built on the new workspace, sparing a buildPrompt activity. */
  prompt?: Omit<BuildPromptRequest, 'workspace'>;
}

/** The workspace, and the first prompt when it was asked for and could be built. */
export type PreparedWorkspace = WorkspaceHandle & { prompt?: BuiltPrompt };

export interface BuildPromptRequest {
  workspace: WorkspaceHandle;
  task: TaskSpec;
  attempt: number;
  /** Prompt tokens every provider of the task can take (domain/models.ts promptBudget). */
  tokenBudget: number;
  /** What went wrong last time, in a few lines (the Decider's feedback). */
  feedback?: string;
  /** The last attempt's artifacts, read here for the reflection: the failing tests and the diff. */
  failure?: { testLog?: ArtifactRef; diff?: ArtifactRef };
  /** Files the model asked to see (READ) during this attempt. */
  requestedFiles?: string[];
  /** Human guidance sent with the `addGuidance` signal. */
  guidance?: string[];
  /** Whether the model may answer with `{ subtasks }` instead of files. */
  allowSubtasks: boolean;
  /** Ask ONLY for a split into subtasks (decomposition: always, or after failures). */
  planOnly?: boolean;
  /** Env var names holding provider keys: their values are masked in the prompt. */
  secretEnvNames?: string[];
  /**
   * A subtask's: the secret files the ROOT task named (domain/redact.ts secretFilesNamed). When
   * set, only these are sent; the subtask's own relatedFiles and text (a model's proposal) unlock
   * none. Absent: the task itself is a person's, and its own naming counts.
   */
  namedSecretFiles?: string[];
}

/**
 * How each file was shown to the model: whole rewrites are accepted only for files shown whole
 * (`masked`: shown whole with values masked as [REDACTED] — SEARCH/REPLACE only).
 */
export type Shown = Record<string, 'whole' | 'partial' | 'masked'>;

export interface BuiltPrompt {
  prompt: ArtifactRef;
  /** Prompt tokens (counted with the tokenizer, format instructions included): the budget's reservation. */
  estTokens: number;
  shown: Shown;
  /** Values masked as [REDACTED] in the prompt (the worker's secrets, credential-looking literals). */
  redactions?: number;
  stats: {
    mapTokens: number;
    mappedFiles: number;
    mapMs: number;
    filesShown: number;
    secretFilesWithheld?: number;
    /** Files shown in part (fileViews.ts): the tokens of the prompt each was given, and what its view took. */
    partialViews?: Record<string, { room: number; tokens: number }>;
  };
}

export interface GenerateChangeRequest {
  workflowId: string;
  attempt: number;
  provider: ProviderSpec;
  prompt: ArtifactRef;
  role: 'primary' | 'shadow';
}

export type GenerateOutcome = 'ok' | 'schema_violation' | 'subtasks' | 'needs_files' | 'truncated';

export interface GenerateChangeResult {
  outcome: GenerateOutcome;
  provider: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  /** Of tokensIn, those served from the provider's prompt cache (usage.prompt_tokens_details.cached_tokens). */
  tokensCached?: number;
  latencyMs: number;
  /** The validated change set (outcome ok) — applyChange reads it from here. */
  change?: ArtifactRef;
  /** Normalised digest of the change set, for consensus/shadow comparisons. */
  changeDigest?: string;
  summary?: string;
  files?: { path: string; action: string }[];
  subtasks?: TaskSpec[];
  /** Files the model asked to see before answering (outcome needs_files). */
  needFiles?: string[];
  /** Why the answer was rejected (outcome schema_violation or truncated). */
  error?: string;
  response: ArtifactRef;
}

export interface ApplyChangeRequest {
  workspace: WorkspaceHandle;
  change: ArtifactRef;
  /** How the attempt's prompts showed each file. */
  shown?: Shown;
  allowTestChanges?: boolean;
  /** Parse the changed files after applying (the syntax gate) and, for a detected playbook, detect the checks for the changed paths. */
  checks?: { playbook: ResolvedPlaybook };
}

/** A parse error the change brought into a file that parsed cleanly before. */
export interface SyntaxProblem {
  path: string;
  line: number;
  column: number;
  /** ERROR (unexpected text) or MISSING (something expected, e.g. a closing bracket). */
  kind: 'ERROR' | 'MISSING';
  /** The lines around it, numbered. */
  excerpt: string;
}

export interface ApplyChangeResult {
  applied: boolean;
  files: string[];
  /** One line per failed block, for the model; non-empty means nothing was written. */
  errors: string[];
  /** Blocks skipped because they change nothing, tolerant matches, and the like. */
  notes?: string[];
  diff?: ArtifactRef;
  /** The syntax gate: errors the change introduced (none: it parses, or no grammar for the file). */
  syntaxErrors?: SyntaxProblem[];
  /** The detected checks for the changed paths, where they differ from the workspace's (a monorepo package). */
  playbook?: ResolvedPlaybook;
}

/**
 * A change applied and its checks run in one activity (runs since FOLD_ROUND_TRIPS): what
 * applyChange and then runCheck for each step would be sent, the steps' own fields taken from
 * the playbook the apply settles on.
 */
export interface ApplyAndCheckRequest extends ApplyChangeRequest {
  checks: { playbook: ResolvedPlaybook };
  /** What the steps' `when`, time limits, env and sandbox are decided by, as the workflow's runChecks reads them. */
  run: { attempt: number; labels: string[]; testTimeoutSec: number; secretEnvNames?: string[]; sandbox?: SandboxPolicy };
  /**
   * The commit the workflow makes when every check passes (it decides `commit` on any pass):
   * made here, with the change's files, when every step that applies ran and passed — the
   * commitAndPush the workflow would send next, without its round trip.
   */
  commit?: Omit<CommitRequest, 'workspace' | 'paths'>;
}

export interface ApplyAndCheckResult {
  /** As applyChange returns it. */
  applied: ApplyChangeResult;
  /**
   * The steps run after it, in order, each as runCheck returns it: all passed but maybe the last.
   * Empty: none ran (the change did not apply, the syntax gate refused it, or the first step is
   * the workflow's to run) — the workflow goes on from there as after applyChange.
   */
  checked: StepOutcome[];
  /** As commitAndPush returns it, when `commit` was asked for and every check passed. */
  committed?: CommitResult;
}

export interface PreviewChangesRequest {
  workspace: WorkspaceHandle;
  changes: ArtifactRef[];
  shown?: Shown;
  allowTestChanges?: boolean;
}

export interface RunTestsRequest {
  workspace: WorkspaceHandle;
  command?: Command;
  timeoutSec: number;
  /** Env var names holding provider keys: kept out of the test command's env and redacted. */
  secretEnvNames?: string[];
  sandbox?: SandboxPolicy;
}

export type RunTestsResult = TestOutcome;

export interface RunCheckRequest {
  workspace: WorkspaceHandle;
  step: PlaybookStep;
  /** The step's time limit, its own or the task's testTimeoutSec. */
  timeoutSec: number;
  secretEnvNames?: string[];
  sandbox?: SandboxPolicy;
}

export interface CommitRequest {
  workspace: WorkspaceHandle;
  message: string;
  /** Remote name or URL to push the branch to; absent → no push. */
  pushRemote?: string;
  /** When not pushed, also store the branch as a git bundle artifact (children do, for their parent). */
  bundle?: boolean;
  /** The task's workflow ID: a remote branch is overwritten only if this task made it. */
  workflowId?: string;
  /**
   * Commit only these paths (what the accepted change wrote), as they were tested: they must be the
   * change set last applied (else CommitMismatch); absent: everything (older runs).
   */
  paths?: string[];
  /** Env var names holding provider keys: a file holding one of their values is never committed. */
  secretEnvNames?: string[];
  /** The commit a person approved: a branch whose head is another commit is not pushed (pushError). */
  approvedCommit?: string;
  /**
   * Remove the workspace afterwards once the work is safe elsewhere: `pushed`, or also `bundled`
   * into the artifact store (saves the workflow a releaseWorkspace round trip).
   */
  release?: 'pushed' | 'bundled';
}

export interface CommitResult {
  commit: string;
  pushed: boolean;
  /** Why the push was rejected (the commit is kept in the workspace). */
  pushError?: string;
  /** The branch as a git bundle, when requested and not pushed. */
  bundle?: ArtifactRef;
  /** Files the run changed or created outside the accepted change (build output, test debris): not committed. */
  leftBehind?: string[];
  /** Files not committed because they hold a secret of the worker. */
  refusedSecrets?: string[];
  /** What the commit changes against the base commit (absent: it could not be read; see the worker's log). */
  diffstat?: Diffstat;
  /** The commit's whole diff against the base commit, in the artifact store. */
  diff?: ArtifactRef;
  /**
   * Files of the change the repository's ignore rules cover, committed all the same (the tests
   * ran with them), each with the rule: `generated/helpers.py (.gitignore:1:generated/)`.
   */
  ignored?: string[];
  /** The workspace was removed (`release`). */
  released?: boolean;
  /** Why removing it failed (clean-up only: the work is safe). */
  releaseError?: string;
}
