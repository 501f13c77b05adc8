// Optimizers (torch.optim) and learning-rate schedules.
// Installs the Tensor methods and the engine wiring: this namespace also works imported alone.
import '../install.js';
export { SGD, setSgdTensorsPerDispatch, type SGDOptions, type ParamGroup, type ParamGroupInput, type SGDState } from './sgd.js';
export * as lrSchedules from './schedule.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './grad-scaler.js';
