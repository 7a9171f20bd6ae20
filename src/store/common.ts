// What the two lease stores share: turning one stored key/value into a
// Lease (or one warning naming the key), and riding out an outage of the
// store with a doubling backoff that is logged once when it starts and once
// when it ends.
import type { Cidr4 } from '../cidr';
import type { Logger } from '../log';
import { sleep } from '../sleep';
import { parseSubnetKey } from '../subnet/key';
import { decodeLeaseValue } from './lease-json';
import type { Lease } from './types';

export const BACKOFF_MIN_MS = 100;
export const BACKOFF_MAX_MS = 5_000;

let failures = 0;
/** Failed calls to a lease source since start (for /metrics). */
export function sourceFailures(): number {
  return failures;
}
export function countSourceFailure(): void {
  failures++;
}

/** The subnet a key's last path element names (`10.5.52.0-24`), or null with a warning (once). */
export function subnetOfKey(key: string, name: string, log: Logger, warned: WarnedKeys): Cidr4 | null {
  const subnet = name.includes('/') ? null : parseSubnetKey(name);
  if (!subnet && warned.first(key, 'not a subnet')) log.warn({ key }, `skipping key ${key}: it does not name a subnet`);
  return subnet;
}

/**
 * Malformed entries a store has warned about: key -> the error said. A
 * store reads a key on every list and every change, so one bad value must
 * not become a line per read. Bounded: past the cap, the oldest is forgotten.
 */
export class WarnedKeys {
  private readonly said = new Map<string, string>();

  /** True the first time this key has this problem. */
  first(key: string, problem: string): boolean {
    if (this.said.get(key) === problem) return false;
    this.said.delete(key);
    this.said.set(key, problem);
    if (this.said.size > 10_000) this.said.delete(this.said.keys().next().value as string);
    return true;
  }

  /** The key is well formed now. */
  clear(key: string): void {
    this.said.delete(key);
  }
}

/** A stored lease, or null with a warning naming the key (once, never quoting the value). */
export function leaseOfEntry(key: string, subnet: Cidr4, value: string, expiration: Date | null, log: Logger, warned: WarnedKeys): Lease | null {
  try {
    const lease = { subnet, ...decodeLeaseValue(value), expiration };
    warned.clear(key);
    return lease;
  } catch (err) {
    const why = (err as Error).message;
    if (warned.first(key, why)) log.warn({ key, err: why }, `skipping malformed lease ${key}: ${why}`);
    return null;
  }
}

/** One watch's view of its store's health: backoff between tries, two log lines per outage. */
export class Outage {
  private since: number | null = null;
  private delayMs = BACKOFF_MIN_MS;

  constructor(
    private readonly log: Logger,
    /** e.g. 'etcd watch': the log says "<what> lost ..." and "<what> resumed". */
    private readonly what: string,
    private readonly fields: Record<string, unknown>,
  ) {}

  /** Logs the first failure of an outage, then waits the current backoff (or until abort). */
  async failed(err: unknown, signal: AbortSignal, extra: Record<string, unknown> = {}): Promise<void> {
    const message = (err as Error).message;
    countSourceFailure();
    if (this.since === null) {
      this.since = Date.now();
      this.log.warn({ ...this.fields, ...extra, err: message }, `${this.what} lost; retrying with backoff: ${message}`);
    } else {
      this.log.debug({ err: message, backoffMs: this.delayMs }, `${this.what} still down`);
    }
    await sleep(this.delayMs, signal);
    this.delayMs = Math.min(this.delayMs * 2, BACKOFF_MAX_MS);
  }

  /** The store answered again: log the end of an outage, if there was one, and reset the backoff. */
  recovered(extra: Record<string, unknown> = {}): void {
    if (this.since !== null) {
      this.log.info({ ...this.fields, ...extra, outageMs: Date.now() - this.since }, `${this.what} resumed`);
    }
    this.since = null;
    this.delayMs = BACKOFF_MIN_MS;
  }
}
