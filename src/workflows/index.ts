// Everything the worker bundles into the workflow sandbox.
export { codingTask, progressQuery, addGuidanceSignal, approvePushUpdate } from './codingTask';
export { taskBatch } from './taskBatch';
