/**
 * The bookkeeping of a prefix cache, with no KV data of its own: a trie whose edges are fixed blocks of token ids
 * (`blockTokens` each), so a node at depth d stands for the first d·blockTokens tokens of every sequence through it.
 * Each node carries a payload (the stage's KV rows of its block, or nothing in the coordinator's directory) and its
 * bytes; the trie keeps its total under `budgetBytes` by evicting the least recently used leaf first. A node is
 * never evicted before its descendants: a block is useless without the blocks before it.
 *
 * Pure in the sense that matters for tests: no I/O, no clocks (a logical counter orders uses), deterministic.
 * Separate namespaces (a stage's layer ranges, a coordinator's routes) share one budget and one LRU order.
 */
export const PREFIX_BLOCK_TOKENS = 16;

interface TrieNode<T> {
  key: string;
  parent: TrieNode<T> | null;
  children: Map<string, TrieNode<T>>;
  payload: T;
  bytes: number;
  /** Logical time of its last use; an ancestor's is never older than a descendant's (uses touch the whole path). */
  used: number;
  namespace: string;
}

export interface PrefixBlock<T> {
  payload: T;
  bytes: number;
}

export interface PrefixTrieStats {
  blocks: number;
  bytes: number;
  budgetBytes: number;
  evictedBlocks: number;
}

export class PrefixTrie<T> {
  private readonly roots = new Map<string, Map<string, TrieNode<T>>>();
  /** Nodes without children: the only ones eviction may take. */
  private readonly leaves = new Set<TrieNode<T>>();
  private clock = 0;
  private totalBytes = 0;
  private blockCount = 0;
  private evicted = 0;

  constructor(
    private budget: number,
    readonly blockTokens = PREFIX_BLOCK_TOKENS,
  ) {
    if (!Number.isFinite(budget) || budget < 0) throw new RangeError(`a prefix cache budget must be ≥ 0 bytes (got ${budget})`);
    if (!Number.isInteger(blockTokens) || blockTokens < 1) throw new RangeError(`a block must hold ≥ 1 token (got ${blockTokens})`);
  }

  get budgetBytes(): number {
    return this.budget;
  }

  /** A new budget (the device has less memory to spare, or more again); evicts down to it at once. */
  resize(budgetBytes: number): T[] {
    if (!Number.isFinite(budgetBytes) || budgetBytes < 0) throw new RangeError(`a prefix cache budget must be ≥ 0 bytes (got ${budgetBytes})`);
    this.budget = budgetBytes;
    return this.evictToBudget(budgetBytes);
  }

  /** Whole blocks of `tokens` present from the start, without marking them used. */
  depth(namespace: string, tokens: ArrayLike<number>): number {
    return this.walk(namespace, tokens, Infinity).length;
  }

  /**
   * The payloads of the longest run of whole blocks of `tokens` present from the start (at most `maxBlocks`), in
   * order; marks them used.
   */
  match(namespace: string, tokens: ArrayLike<number>, maxBlocks = Infinity): T[] {
    const path = this.walk(namespace, tokens, maxBlocks);
    if (path.length > 0) this.touch(path[path.length - 1]);
    return path.map((n) => n.payload);
  }

  /**
   * Adds the whole blocks of `tokens` (at most `maxBlocks`) that are not there yet, asking `make(i)` for block i's
   * payload (only for missing blocks: present ones are only marked used), then evicts least recently used leaves
   * until the budget holds. Returns how many blocks were added and the payloads evicted.
   */
  insert(namespace: string, tokens: ArrayLike<number>, make: (block: number) => PrefixBlock<T>, maxBlocks = Infinity): { added: number; evicted: T[] } {
    const blocks = Math.min(Math.floor(tokens.length / this.blockTokens), maxBlocks);
    let level = this.roots.get(namespace);
    if (!level) this.roots.set(namespace, (level = new Map()));
    let parent: TrieNode<T> | null = null;
    let added = 0;
    let last: TrieNode<T> | null = null;
    for (let b = 0; b < blocks; b++) {
      const key = this.blockKey(tokens, b);
      let node: TrieNode<T> | undefined = level.get(key);
      if (!node) {
        const { payload, bytes } = make(b);
        if (!(bytes >= 0)) throw new RangeError(`a block's bytes must be ≥ 0 (got ${bytes})`);
        node = { key, parent, children: new Map(), payload, bytes, used: 0, namespace };
        level.set(key, node);
        if (parent) this.leaves.delete(parent);
        this.leaves.add(node);
        this.totalBytes += bytes;
        this.blockCount++;
        added++;
      }
      last = node;
      parent = node;
      level = node.children;
    }
    if (last) this.touch(last);
    else if (level.size === 0 && parent === null) this.roots.delete(namespace);
    return { added, evicted: this.evictToBudget(this.budgetBytes) };
  }

  /** Evicts least recently used leaves until at most `bytes` are held; returns their payloads. */
  evictToBudget(bytes: number): T[] {
    const out: T[] = [];
    while (this.totalBytes > bytes && this.leaves.size > 0) {
      let oldest: TrieNode<T> | null = null;
      for (const leaf of this.leaves) if (oldest === null || leaf.used < oldest.used) oldest = leaf;
      out.push(this.remove(oldest!));
      this.evicted++;
    }
    return out;
  }

  /**
   * Forgets the blocks of `tokens` from block `fromBlock` on, with everything after them (a stage said it no longer
   * holds them). Returns the payloads removed.
   */
  forget(namespace: string, tokens: ArrayLike<number>, fromBlock: number): T[] {
    const path = this.walk(namespace, tokens, Infinity);
    if (fromBlock >= path.length) return [];
    return this.removeSubtree(path[Math.max(0, fromBlock)]);
  }

  /** Every block of a namespace (its layers were freed). */
  dropNamespace(namespace: string): T[] {
    const level = this.roots.get(namespace);
    if (!level) return [];
    return [...level.values()].flatMap((n) => this.removeSubtree(n));
  }

  /** A node and every block below it, leaves first (so each removal leaves a valid trie); their values. */
  private removeSubtree(root: TrieNode<T>): T[] {
    const stack = [root];
    const subtree: TrieNode<T>[] = [];
    while (stack.length > 0) {
      const n = stack.pop()!;
      subtree.push(n);
      stack.push(...n.children.values());
    }
    return subtree.reverse().map((n) => this.remove(n));
  }

  stats(): PrefixTrieStats {
    return { blocks: this.blockCount, bytes: this.totalBytes, budgetBytes: this.budgetBytes, evictedBlocks: this.evicted };
  }

  private walk(namespace: string, tokens: ArrayLike<number>, maxBlocks: number): TrieNode<T>[] {
    const path: TrieNode<T>[] = [];
    let level = this.roots.get(namespace);
    const blocks = Math.min(Math.floor(tokens.length / this.blockTokens), maxBlocks);
    for (let b = 0; level && b < blocks; b++) {
      const node = level.get(this.blockKey(tokens, b));
      if (!node) break;
      path.push(node);
      level = node.children;
    }
    return path;
  }

  private touch(node: TrieNode<T>): void {
    const now = ++this.clock;
    for (let n: TrieNode<T> | null = node; n; n = n.parent) n.used = now;
  }

  private remove(node: TrieNode<T>): T {
    if (node.children.size > 0) throw new Error('prefix trie: only a leaf may be removed');
    const level = node.parent ? node.parent.children : this.roots.get(node.namespace)!;
    level.delete(node.key);
    this.leaves.delete(node);
    if (node.parent && node.parent.children.size === 0) this.leaves.add(node.parent);
    if (!node.parent && level.size === 0) this.roots.delete(node.namespace);
    this.totalBytes -= node.bytes;
    this.blockCount--;
    return node.payload;
  }

  private blockKey(tokens: ArrayLike<number>, block: number): string {
    let key = '';
    const start = block * this.blockTokens;
    for (let i = start; i < start + this.blockTokens; i++) key += (i > start ? ',' : '') + tokens[i];
    return key;
  }
}
