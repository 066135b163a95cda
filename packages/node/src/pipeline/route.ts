/** The stages a request runs through: peer ids in ring order and their layer ranges. */
export interface Route {
  /** Identifies the plan the route came from (for logs and metrics). */
  planId: string;
  peers: string[];
  ranges: [number, number][];
  model: string;
  /** The id of the LoRA adapter the route's stages apply (the coordinator's `--lora`), if any. */
  lora?: string;
}
