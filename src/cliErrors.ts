// Every error a `weaver` command can end with, said in one line with its exit code: the mapping
// lives here, once, for all commands. The stack is for `--debug`, never shown otherwise.
import { isGrpcServiceError, NamespaceNotFoundError, ServiceError, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { TaskInputError, TemporalUnreachableError } from './client';
import { InputError } from './cliInput';
import { config } from './config';
import { Unavailable } from './inspect';

/** A mistake in the command line: exit 2 with the usage text. */
export class UsageError extends Error {}

export interface CliFailure {
  line: string;
  /** 1: the thing asked about failed or is not there; 2: bad input or usage. */
  code: 1 | 2;
  usage?: boolean;
}

/** gRPC status 14: no server answered. */
const GRPC_UNAVAILABLE = 14;

const firstLine = (s: string) => s.split('\n')[0].trim();

/** The one line (and exit code) an error ends a command with. */
export function describeCliError(err: unknown): CliFailure {
  if (err instanceof UsageError) return { line: err.message, code: 2, usage: true };
  // node:util parseArgs: an unknown option or a missing value.
  if ((err as NodeJS.ErrnoException)?.code?.startsWith?.('ERR_PARSE_ARGS_')) return { line: (err as Error).message, code: 2, usage: true };
  if (err instanceof InputError) return { line: err.message, code: 2 };
  if (err instanceof TaskInputError) return { line: `task refused: ${err.issues.join('; ')}`, code: 2 };
  if (err instanceof Unavailable) return { line: err.message, code: 1 };
  if (err instanceof WorkflowNotFoundError) return { line: `no such workflow: ${err.workflowId ?? err.message}`, code: 1 };
  if (err instanceof NamespaceNotFoundError) return { line: `${firstLine(err.message)} at ${config().address}; create it (temporal operator namespace create) or set TEMPORAL_NAMESPACE`, code: 1 };
  if (err instanceof TemporalUnreachableError || unreachable(err)) {
    const address = err instanceof TemporalUnreachableError ? err.address : config().address;
    return { line: `Temporal is not reachable at ${address}: start the server or set TEMPORAL_ADDRESS (WEAVER_CONNECT_TIMEOUT: how long to wait)`, code: 1 };
  }
  if (err instanceof WorkflowFailedError) return { line: `task failed: ${firstLine(err.cause?.message ?? err.message)}`, code: 1 };
  return { line: `error: ${firstLine((err as Error)?.message ?? String(err))} (--debug shows where)`, code: 1 };
}

/** A call that reached no server: gRPC UNAVAILABLE or a connect deadline, possibly wrapped by the SDK. */
function unreachable(err: unknown): boolean {
  const e = err instanceof ServiceError && err.cause ? err.cause : err;
  if (isGrpcServiceError(e) && e.code === GRPC_UNAVAILABLE) return true;
  return /Failed to connect before the deadline/.test((e as Error)?.message ?? '');
}

/** Prints the failure (stderr) — with the stack and causes under `debug` — and returns the exit code. */
export function reportCliError(err: unknown, debug: boolean, usage: string): number {
  const f = describeCliError(err);
  console.error(f.line);
  if (f.usage) console.error(usage);
  if (debug) {
    for (let e: unknown = err; e; e = (e as Error).cause) console.error(e instanceof Error ? e.stack : String(e));
  }
  return f.code;
}
