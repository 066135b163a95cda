/** A peer broke the weights protocol (malformed message, wrong size or hash); its stream is reset. */
export class WeightsProtocolError extends Error {
  override name = 'WeightsProtocolError';
}

/** No peer could provide the model's weights (none has the model, or every one failed). */
export class WeightsUnavailableError extends Error {
  override name = 'WeightsUnavailableError';
}
