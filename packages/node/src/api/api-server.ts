import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiRouter } from './api-router.js';
/** Default bind address: the API controls the node, so it is local unless `--api-host` says otherwise. */
export const DEFAULT_API_HOST = '127.0.0.1';

export class ApiPortInUseError extends Error {
  override name = 'ApiPortInUseError';
}

export interface ApiServer {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function startApiServer(router: ApiRouter, options: { port: number; host?: string }): Promise<ApiServer> {
  const host = options.host ?? DEFAULT_API_HOST;
  const server = createServer((req, res) => void router.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new ApiPortInUseError(`the API port ${options.port} on ${host} is in use (another edge-node?); pass --api-port with a free port, or 0 for any`)
          : err,
      ),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
