// The SDK's logger with one known-harmless warning dropped: Weaver's workspace-queue worker
// runs activities only, and the SDK warns about that on every start.
import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';

const NOISE = /^No workflows registered, not polling for workflow tasks/;

export function weaverLogger(level: LogLevel = 'INFO'): DefaultLogger {
  const print = new DefaultLogger(level);
  return new DefaultLogger(level, (entry: LogEntry) => {
    if (!NOISE.test(entry.message)) print.log(entry.level, entry.message, entry.meta);
  });
}
