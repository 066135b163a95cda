export * from './model/model-config.js';
export * from './model/model-file.js';
export * from './model/model-errors.js';
