// Everything the worker bundles into the workflow sandbox.
export { codingTask, progressQuery, addGuidanceSignal, approvePushSignal } from './codingTask';
export { taskBatch } from './taskBatch';
