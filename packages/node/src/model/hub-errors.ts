/** Base class of every Hugging Face Hub download failure; messages say what to do next. */
export class HubError extends Error {
  override name = 'HubError';
}

/** 401/403: the repo is gated or private and the token (HF_TOKEN) is missing, wrong or lacks access. */
export class HubAccessError extends HubError {
  override name = 'HubAccessError';
  constructor(
    readonly repo: string,
    readonly status: number,
    readonly gated: boolean,
    detail: string,
  ) {
    super(
      gated
        ? `${repo} is a gated model: ${status === 401 ? 'log in first — set HF_TOKEN to an access token (hf_…)' : 'your token has no access yet'}; ` +
            `accept its conditions on the model page of the hub, then retry (${detail})`
        : status === 401
          ? `${repo} needs authentication (HTTP 401): it is private or does not exist — check the name, or set HF_TOKEN to a token with read access (${detail})`
          : `${repo}: access denied (HTTP 403) for this token — check that HF_TOKEN may read this repo (${detail})`,
    );
  }
}

/** 404: the repo, the revision or a file in it does not exist. */
export class HubNotFoundError extends HubError {
  override name = 'HubNotFoundError';
  constructor(
    readonly repo: string,
    readonly what: 'repo' | 'revision' | 'file',
    readonly target: string,
  ) {
    super(
      what === 'repo'
        ? `model repo ${repo} was not found on the hub (HTTP 404): check the name (owner/name)`
        : what === 'revision'
          ? `revision "${target}" of ${repo} was not found (HTTP 404): check the branch, tag or commit after @`
          : `file ${target} was not found in ${repo} (HTTP 404): check the file name (list the repo's files on its hub page)`,
    );
  }
}

/** A downloaded file whose size or SHA-256 does not match what the hub announced; the bad file is removed. */
export class HubChecksumError extends HubError {
  override name = 'HubChecksumError';
  constructor(
    readonly repo: string,
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${file} from ${repo} is corrupt: expected ${expected}, got ${actual}; the damaged download was deleted — retry to download it again`);
  }
}

/** The connection broke too often while downloading; the partial file is kept and the next attempt resumes it. */
export class HubDownloadInterruptedError extends HubError {
  override name = 'HubDownloadInterruptedError';
  constructor(
    readonly repo: string,
    readonly file: string,
    readonly bytesDone: number,
    readonly bytesTotal: number,
    reason: string,
  ) {
    super(`downloading ${file} from ${repo} was interrupted at ${bytesDone} of ${bytesTotal} bytes (${reason}); run the command again to resume`);
  }
}

/** Not enough free disk space in the cache directory. */
export class HubDiskFullError extends HubError {
  override name = 'HubDiskFullError';
  constructor(
    readonly dir: string,
    readonly neededBytes: number,
    readonly freeBytes: number | null,
  ) {
    super(
      `not enough disk space in ${dir}: ${neededBytes} more bytes are needed` +
        (freeBytes === null ? '' : ` but only ${freeBytes} are free`) +
        `; free some space or pass --data-dir on a larger disk (a partial download is kept and resumed)`,
    );
  }
}

/** Offline (HF_HUB_OFFLINE=1) and the model is not in the cache yet. */
export class HubOfflineError extends HubError {
  override name = 'HubOfflineError';
  constructor(readonly ref: string, readonly cacheDir: string) {
    super(`${ref} is not in the cache ${cacheDir} and downloads are off (HF_HUB_OFFLINE): download it once with network access`);
  }
}

/** The hub (or HF_ENDPOINT) answered something unexpected or could not be reached. */
export class HubResponseError extends HubError {
  override name = 'HubResponseError';
}

/** A --model value that is neither an existing path nor a valid repo id. */
export class HubRefError extends HubError {
  override name = 'HubRefError';
}
