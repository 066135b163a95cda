// The HTTP API's defaults, in a file of their own: `edge-node <command> --help` shows them without loading the server
// (node:http alone costs ~0.1 s of CPU) or the routes.

/** Default HTTP API port of `edge-node start` (`--api-port`). */
export const DEFAULT_API_PORT = 8080;

/** Requests that may wait for a pipeline slot before new ones get a 429 (`--queue-length`). */
export const DEFAULT_QUEUE_LENGTH = 32;
