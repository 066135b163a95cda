/** The model (weights + KV cache + activations) cannot be placed on the given devices. */
export class ModelDoesNotFitError extends Error {
  override name = 'ModelDoesNotFitError';
  constructor(
    /** Bytes that would have to be added (on suitable devices) for the model to fit. */
    readonly missingBytes: number,
    /** What the whole model needs with the requested context and concurrency. */
    readonly requiredBytes: number,
    /** What the devices offer in total. */
    readonly availableBytes: number,
    detail: string,
  ) {
    super(
      `the model does not fit on these devices: it needs ${formatBytes(requiredBytes)} ` +
        `(weights + KV cache + activations), the devices have ${formatBytes(availableBytes)}; ` +
        `missing about ${formatBytes(missingBytes)}. ${detail} ` +
        `Add a device, reserve a shorter context or fewer concurrent requests, or use a smaller weight type.`,
    );
  }
}

/** devices.json (or a Cluster built in code) is malformed. */
export class InvalidDevicesError extends Error {
  override name = 'InvalidDevicesError';
}

/** A model config object lacks the fields a planner needs. */
export class InvalidModelConfigError extends Error {
  override name = 'InvalidModelConfigError';
}

/** A split or plan does not match the model or the cluster (wrong layer total, unknown device...). */
export class InvalidPlanError extends Error {
  override name = 'InvalidPlanError';
}

export function formatBytes(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${Math.round(n)} B`;
}

/** A training job's split cannot be placed: the owner cannot hold the first stage, or the devices not every layer. */
export class TrainingDoesNotFitError extends Error {
  override name = 'TrainingDoesNotFitError';
  constructor(
    /** Bytes that would have to be added (on the device named, or on suitable devices) for the job to fit. */
    readonly missingBytes: number,
    /** The device the shortfall is on, when it is one device's. */
    readonly device: string | null,
    detail: string,
  ) {
    super(
      `the training job does not fit on these devices: ${detail}; missing about ${formatBytes(missingBytes)}. ` +
        'Free memory on the devices, add a device, train shorter sequences or a smaller rank.',
    );
  }
}
