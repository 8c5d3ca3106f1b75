// Everything the worker bundles into the workflow sandbox.
export { codingTask, progressQuery, addGuidanceSignal } from './codingTask';
export { approvePushSignal, approvePushUpdate } from './messages';
export { taskBatch } from './taskBatch';
export { providerQuota } from './providerQuota';
