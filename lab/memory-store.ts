// TEST FAKE. An in-memory LeaseStore for unit tests of pure logic
// (acquisition, renewal timing). It proves nothing about the real stores:
// etcd and SQLite semantics are tested against the real things.
import { type Cidr4, formatCidr4 } from '../src/cidr';
import {
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  type LeaseStore,
  SubnetTakenError,
  type WatchBatch,
} from '../src/store/types';
import { subnetKey } from '../src/subnet/key';

interface Entry {
  subnet: Cidr4;
  attrs: LeaseAttrs;
  expiresAt: number | null; // ms; null = reservation
}

export class MemoryLeaseStore implements LeaseStore {
  readonly description = 'memory store (test fake)';
  readonly entries = new Map<string, Entry>();
  /** Every mutating call, e.g. "create 10.5.3.0/24 ttl=86400", for assertions. */
  readonly calls: string[] = [];
  /** Runs before createLease checks for the key: lets a test play a racing node. */
  beforeCreate?: (subnet: Cidr4) => void;
  private events: { rev: number; event: LeaseEvent }[] = [];
  private rev = 0;
  private wake: (() => void) | null = null;

  constructor(public now: () => number = Date.now) {}

  /** Seeds a lease directly (ttlSeconds 0 = a reservation). */
  put(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds = 86400): void {
    this.write(subnet, attrs, ttlSeconds);
  }

  async createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    this.beforeCreate?.(subnet);
    this.calls.push(`create ${formatCidr4(subnet)} ttl=${ttlSeconds}`);
    if (this.live(subnetKey(subnet))) throw new SubnetTakenError(subnet);
    return this.write(subnet, attrs, ttlSeconds);
  }

  async updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    this.calls.push(`update ${formatCidr4(subnet)} ttl=${ttlSeconds}`);
    return this.write(subnet, attrs, ttlSeconds);
  }

  async deleteLease(subnet: Cidr4): Promise<void> {
    this.calls.push(`delete ${formatCidr4(subnet)}`);
    if (this.entries.delete(subnetKey(subnet))) this.emit({ type: 'removed', subnet, cause: 'deleted' });
  }

  async listLeases(): Promise<{ leases: Lease[]; cursor: string }> {
    const leases: Lease[] = [];
    for (const key of [...this.entries.keys()]) {
      const e = this.live(key);
      if (e) leases.push(toLease(e));
    }
    return { leases, cursor: String(this.rev) };
  }

  // Minimal: events after the cursor, as they happen; no compaction, no snapshots.
  async *watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch> {
    let seen = Number(cursor);
    while (!signal.aborted) {
      const fresh = this.events.filter((e) => e.rev > seen);
      if (fresh.length > 0) {
        seen = fresh[fresh.length - 1].rev;
        yield { kind: 'events', events: fresh.map((e) => e.event), cursor: String(seen) };
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  async close(): Promise<void> {}

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt !== null && e.expiresAt <= this.now()) {
      this.entries.delete(key);
      this.emit({ type: 'removed', subnet: e.subnet, cause: 'expired' });
      return undefined;
    }
    return e;
  }

  private write(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Date | null {
    const expiresAt = ttlSeconds > 0 ? this.now() + ttlSeconds * 1000 : null;
    const e = { subnet, attrs, expiresAt };
    this.entries.set(subnetKey(subnet), e);
    this.emit({ type: 'added', lease: toLease(e) });
    return e.expiresAt === null ? null : new Date(e.expiresAt);
  }

  private emit(event: LeaseEvent): void {
    this.events.push({ rev: ++this.rev, event });
    this.wake?.();
    this.wake = null;
  }
}

function toLease(e: Entry): Lease {
  return { subnet: e.subnet, ...e.attrs, expiration: e.expiresAt === null ? null : new Date(e.expiresAt) };
}
