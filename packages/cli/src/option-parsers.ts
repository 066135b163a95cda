import { UsageError } from './cli-command.js';

/** A numeric flag's value, or the default when the flag is absent; anything unparsable is a UsageError. */
export function numberOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} needs a number (got "${value}")`);
  return n;
}

export function intOption(value: string | undefined, flag: string, fallback: number): number {
  const n = numberOption(value, flag, fallback);
  if (!Number.isInteger(n)) throw new UsageError(`${flag} needs a whole number (got "${value}")`);
  return n;
}

/** A flag that takes on or off. */
export function onOff(value: string, flag: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new UsageError(`${flag} takes on or off (got "${value}")`);
}

/** The partitioner strategies `plan` and `bench` offer (`--strategy`). */
export type PlanStrategy = 'optimal' | 'memory-weighted' | 'equal';

/** `--strategy`: optimal (the default), memory-weighted or equal. */
export function strategyOption(value: string | undefined): PlanStrategy {
  const strategy = value ?? 'optimal';
  if (strategy !== 'optimal' && strategy !== 'memory-weighted' && strategy !== 'equal') {
    throw new UsageError(`--strategy must be optimal, memory-weighted or equal, got "${strategy}"`);
  }
  return strategy;
}
