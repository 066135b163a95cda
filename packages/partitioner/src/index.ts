// @edge-node/partitioner's public surface: what the runtime, the CLI and the planning benchmarks import, by name.
export { decideReplan, decideRestore, moveCostMs, type ReplanPolicy, repricePlan } from './adaptive-replan.js';
export { type Cluster, type Device, type Link, parseCluster } from './cluster.js';
export { CostModel } from './cost-model.js';
export { PROMPT_ROWS_PER_STEP, BATCH_ROWS_PER_STEP } from './step-rows.js';
export { replayDay } from './day-replay.js';
export { formatBytes, InvalidDevicesError, InvalidModelConfigError, InvalidPlanError, ModelDoesNotFitError, TrainingDoesNotFitError } from './errors.js';
export { type ModelProfile, modelProfile } from './model-profile.js';
export { type ModelShape, modelShapeFromHfConfig } from './model-shape.js';
export type { Objective, Plan } from './plan.js';
export { evaluateSplit, planPipeline } from './planner.js';
export { movedLayers } from './replan.js';
export type { RequestShape } from './request-shape.js';
export { type Prediction, simulate } from './simulator.js';
export { TRAINING_FORWARDS_PER_TOKEN } from './training-cost-model.js';
export { mostKeptThatFits, ownerEndsTrainingBytes, stageTrainingMemory, type StageTrainingMemory, type TrainingDims } from './training-memory.js';
export { evaluateTrainingSplit, planTraining, type TrainingPlan } from './training-planner.js';
export type { TrainingShape } from './training-shape.js';
