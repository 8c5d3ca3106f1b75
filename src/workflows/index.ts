// Everything the worker bundles into the workflow sandbox.
export { codingTask, progressQuery, addGuidanceSignal } from './codingTask';
export { taskBatch } from './taskBatch';
