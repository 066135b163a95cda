/** A contiguous range of transformer layers, [startLayer, endLayer). */
export interface LayerRange {
  startLayer: number;
  endLayer: number;
}

/** A requested layer range that does not fit the model. */
export class LayerRangeError extends Error {
  override name = 'LayerRangeError';
}

export function checkLayerRange(range: LayerRange, numLayers: number): void {
  const { startLayer, endLayer } = range;
  if (!Number.isInteger(startLayer) || !Number.isInteger(endLayer) || startLayer < 0 || endLayer > numLayers || startLayer >= endLayer) {
    throw new LayerRangeError(`layer range [${startLayer}, ${endLayer}) is not inside the model's ${numLayers} layers`);
  }
}
