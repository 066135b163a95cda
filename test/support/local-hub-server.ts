/**
 * A Hugging Face Hub stand-in on loopback, serving read-only local folders in the hub's URL layout — what
 * @huggingface/hub calls: `/api/models/{repo}/revision/{rev}`, `/api/models/{repo}/tree/{rev}`,
 * `/{repo}/resolve/{rev}/{file}` (ETag / X-Linked-Etag / X-Linked-Size / Content-Length / Range), with the hub's
 * error shapes (401 gated, 404 RepoNotFound / RevisionNotFound / EntryNotFound) and injectable faults.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface LocalRepo {
  /** owner/name */
  repo: string;
  /** Folder whose top-level files are the repo's files. */
  dir: string;
  /** Only these files (default: every file of dir). */
  files?: string[];
  /** Requires `Authorization: Bearer <token>`: 401 without a token, 403 with another one. */
  gatedToken?: string;
}

interface RepoFile {
  path: string;
  abs: string;
  size: number;
  lfs: boolean;
  sha256: string;
  gitOid: string;
}

interface ServedRepo {
  spec: LocalRepo;
  commit: string;
  files: Map<string, RepoFile>;
}

export interface HubRequestLog {
  method: string;
  url: string;
  range: string | null;
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

/** Faults for the next matching resolve requests. */
export interface HubFaults {
  /** Destroy the connection after this many body bytes, for `times` requests of `file`. */
  cut?: { file: string; afterBytes: number; times: number };
  /** Serve `file` with one byte flipped at `offset` (until cleared). */
  corrupt?: { file: string; offset: number };
}

const LFS_SUFFIXES = ['.safetensors', '.gguf', '.bin'];

function loadRepo(spec: LocalRepo): ServedRepo {
  const names = spec.files ?? readdirSync(spec.dir).filter((n) => statSync(join(spec.dir, n)).isFile());
  const files = new Map<string, RepoFile>();
  const commitHash = createHash('sha1').update(spec.repo);
  for (const name of names.sort()) {
    const abs = join(spec.dir, name);
    const data = readFileSync(abs);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const gitOid = createHash('sha1').update(`blob ${data.byteLength}\0`).update(data).digest('hex');
    files.set(name, { path: name, abs, size: data.byteLength, lfs: LFS_SUFFIXES.some((s) => name.endsWith(s)), sha256, gitOid });
    commitHash.update(`${name}:${sha256}`);
  }
  return { spec, commit: commitHash.digest('hex'), files };
}

export class LocalHubServer {
  readonly requests: HubRequestLog[] = [];
  faults: HubFaults = {};
  private readonly repos = new Map<string, ServedRepo>();
  private server: Server | null = null;
  url = '';

  constructor(repos: LocalRepo[]) {
    for (const r of repos) this.repos.set(r.repo, loadRepo(r));
  }

  commitOf(repo: string): string {
    return this.repos.get(repo)!.commit;
  }

  fileInfo(repo: string, file: string): RepoFile {
    return this.repos.get(repo)!.files.get(file)!;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }

  /** Resolve (file) requests seen so far, optionally for one file. */
  resolveRequests(file?: string): HubRequestLog[] {
    return this.requests.filter((r) => r.url.includes('/resolve/') && (file === undefined || r.url.split('?')[0].endsWith(`/${file}`)));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const log: HubRequestLog = { method: req.method ?? 'GET', url: url.pathname + url.search, range: req.headers.range ?? null, status: 0, bytes: 0 };
    this.requests.push(log);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      log.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'X-Request-Id': 'local', ...headers });
      res.end(text);
    };
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const api = parts[0] === 'api' && parts[1] === 'models';
    const repoName = api ? `${parts[2]}/${parts[3]}` : `${parts[0]}/${parts[1]}`;
    const rest = api ? parts.slice(4) : parts.slice(2);
    const repo = this.repos.get(repoName);
    if (!repo) return send(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });

    const gated = repo.spec.gatedToken;
    if (gated !== undefined) {
      const auth = req.headers.authorization;
      if (auth === undefined) {
        return send(401, { error: `Access to model ${repoName} is restricted. You must have access to it and be authenticated to access it. Please log in.` }, { 'X-Error-Code': 'GatedRepo' });
      }
      if (auth !== `Bearer ${gated}`) {
        return send(403, { error: `Access to model ${repoName} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repoName} to ask for access.` }, { 'X-Error-Code': 'GatedRepo' });
      }
    }
    const rev = rest[1];
    if (rev !== 'main' && rev !== 'HEAD' && rev !== repo.commit) {
      return send(404, { error: `Invalid rev id: ${rev}` }, { 'X-Error-Code': 'RevisionNotFound' });
    }
    const files = [...repo.files.values()];
    if (api && rest[0] === 'revision') {
      return send(200, {
        _id: createHash('md5').update(repoName).digest('hex').slice(0, 24),
        id: repoName,
        modelId: repoName,
        sha: repo.commit,
        private: false,
        gated: gated === undefined ? false : 'manual',
        downloads: 0,
        likes: 0,
        lastModified: '2025-01-01T00:00:00.000Z',
        siblings: files.map((f) => ({ rfilename: f.path })),
      });
    }
    if (api && rest[0] === 'tree') {
      return send(
        200,
        files.map((f) => ({
          type: 'file',
          oid: f.gitOid,
          size: f.lfs ? 134 : f.size,
          path: f.path,
          ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
        })),
      );
    }
    if (!api && rest[0] === 'resolve') {
      const file = repo.files.get(rest.slice(2).join('/'));
      if (!file) return send(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      return this.serveFile(req, res, repo, file, log);
    }
    return send(404, { error: `no route for ${url.pathname}` });
  }

  private serveFile(req: IncomingMessage, res: ServerResponse, repo: ServedRepo, file: RepoFile, log: HubRequestLog): void {
    let data = readFileSync(file.abs);
    const corrupt = this.faults.corrupt;
    if (corrupt && corrupt.file === file.path) {
      data = Buffer.from(data);
      data[corrupt.offset] ^= 0xff;
    }
    const etag = `"${file.lfs ? file.sha256 : file.gitOid}"`;
    const headers: Record<string, string> = {
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
      'X-Repo-Commit': repo.commit,
      ETag: etag,
      ...(file.lfs ? { 'X-Linked-Etag': etag, 'X-Linked-Size': String(file.size) } : {}),
    };
    let start = 0;
    let end = data.byteLength - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      end = range[2] === '' ? end : Math.min(end, Number(range[2]));
      if (start > end) {
        log.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${data.byteLength}` });
        res.end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${data.byteLength}`;
    }
    const body = data.subarray(start, end + 1);
    headers['Content-Length'] = String(body.byteLength);
    log.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const cut = this.faults.cut;
    if (cut && cut.file === file.path && cut.times > 0 && body.byteLength > cut.afterBytes) {
      cut.times--;
      // Send part of the body, then drop the connection as a broken network would.
      res.write(body.subarray(0, cut.afterBytes), () => setTimeout(() => res.socket?.destroy(), 20));
      log.bytes = cut.afterBytes;
      return;
    }
    log.bytes = body.byteLength;
    res.end(body);
  }
}
