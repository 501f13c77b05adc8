// Optimizers (torch.optim) and learning-rate schedules.
export { SGD, type SGDOptions, type ParamGroup, type ParamGroupInput, type SGDState } from './sgd.js';
export * as lrSchedules from './schedule.js';
