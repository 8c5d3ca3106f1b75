// Environment settings shared by the worker, the client and the CLI (the public contract).
import path from 'node:path';

export interface WeaverConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  artifactDir: string;
  workspaceRoot: string;
  retryDelayScale: number;
  heartbeatMs: number;
  uiUrl: string;
}

export function config(env: NodeJS.ProcessEnv = process.env): WeaverConfig {
  const address = env.TEMPORAL_ADDRESS || 'localhost:7233';
  return {
    address,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.WEAVER_TASK_QUEUE || 'weaver',
    artifactDir: path.resolve(env.WEAVER_ARTIFACT_DIR || '.weaver/artifacts'),
    workspaceRoot: path.resolve(env.WEAVER_WORKSPACE_ROOT || '.weaver/workspaces'),
    retryDelayScale: Number(env.WEAVER_RETRY_DELAY_SCALE || 1),
    heartbeatMs: Number(env.WEAVER_HEARTBEAT_MS || 1000),
    uiUrl: env.WEAVER_UI_URL || `http://${address.split(':')[0] === '127.0.0.1' ? '127.0.0.1' : 'localhost'}:8233`,
  };
}
