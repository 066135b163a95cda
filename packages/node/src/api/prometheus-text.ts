/**
 * Prometheus text exposition (format 0.0.4) written by hand: counters, gauges and histograms with labels.
 */
export type Labels = Record<string, string>;

function labelText(labels: Labels, extra?: [string, string]): string {
  const all = Object.entries(labels);
  if (extra) all.push(extra);
  if (all.length === 0) return '';
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${all.map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function key(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

abstract class Metric<S> {
  protected readonly series = new Map<string, { labels: Labels; state: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  protected get(labels: Labels, init: () => S): S {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, state: init() };
      this.series.set(k, s);
    }
    return s.state;
  }
  abstract render(): string;
}

export class Counter extends Metric<{ value: number }> {
  inc(labels: Labels = {}, by = 1): void {
    this.get(labels, () => ({ value: 0 })).value += by;
  }
  value(labels: Labels = {}): number {
    return this.series.get(key(labels))?.state.value ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const { labels, state } of this.series.values()) out += `${this.name}${labelText(labels)} ${num(state.value)}\n`;
    return out;
  }
}

/** A gauge read when rendered (queue depth, cache bytes, …) or set directly. */
export class Gauge extends Metric<{ value: number }> {
  constructor(
    name: string,
    help: string,
    private readonly read?: () => number | { labels: Labels; value: number }[],
  ) {
    super(name, help);
  }
  set(value: number, labels: Labels = {}): void {
    this.get(labels, () => ({ value: 0 })).value = value;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`;
    if (this.read) {
      const v = this.read();
      const rows = typeof v === 'number' ? [{ labels: {}, value: v }] : v;
      for (const r of rows) out += `${this.name}${labelText(r.labels)} ${num(r.value)}\n`;
    }
    for (const { labels, state } of this.series.values()) out += `${this.name}${labelText(labels)} ${num(state.value)}\n`;
    return out;
  }
}

export class Histogram extends Metric<{ counts: number[]; sum: number; count: number }> {
  constructor(
    name: string,
    help: string,
    /** Upper bounds, ascending (the +Inf bucket is implied). */
    readonly buckets: readonly number[],
  ) {
    super(name, help);
  }
  observe(value: number, labels: Labels = {}): void {
    const s = this.get(labels, () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.series.get(key(labels))?.state.count ?? 0;
  }

  sum(labels: Labels = {}): number {
    return this.series.get(key(labels))?.state.sum ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const { labels, state } of this.series.values()) {
      this.buckets.forEach((b, i) => (out += `${this.name}_bucket${labelText(labels, ['le', num(b)])} ${state.counts[i]}\n`));
      out += `${this.name}_bucket${labelText(labels, ['le', '+Inf'])} ${state.count}\n`;
      out += `${this.name}_sum${labelText(labels)} ${num(state.sum)}\n`;
      out += `${this.name}_count${labelText(labels)} ${state.count}\n`;
    }
    return out;
  }
}
