// The lease store: one interface, two implementations (etcd v3 with
// flannel's layout, and an embedded SQLite file for one host). Values are
// flannel's: a weft node and a flannel node can share one store.
import type { Cidr4 } from '../cidr';

/** flannel's LeaseAttrs, field for field (pkg/subnet/subnet.go). */
export interface LeaseAttrs {
  PublicIP: string;
  PublicIPv6: string | null;
  /** "vxlan"; absent on flannel's udp leases. */
  BackendType?: string;
  /** vxlan: {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}. */
  BackendData?: unknown;
}

export interface Lease {
  subnet: Cidr4;
  attrs: LeaseAttrs;
  /** When the lease lapses; null for a reservation (a key with no TTL). */
  expiration: Date | null;
}

export type LeaseEvent = { type: 'added'; lease: Lease } | { type: 'removed'; subnet: Cidr4 };

/**
 * One batch from a watch: either changes since the last batch, or (after a
 * compaction, or whenever the store cannot prove it missed nothing) the
 * whole current list, which replaces everything known before.
 */
export type WatchBatch =
  | { kind: 'events'; events: LeaseEvent[]; cursor: string }
  | { kind: 'snapshot'; leases: Lease[]; cursor: string };

export class SubnetTakenError extends Error {
  constructor(readonly subnet: Cidr4) {
    super('subnet already exists');
    this.name = 'SubnetTakenError';
  }
}

export class ConfigNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigNotFoundError';
  }
}

export interface LeaseStore {
  /** The raw text of the network config (etcd: <prefix>/config). Throws ConfigNotFoundError. */
  getNetworkConfig(): Promise<string>;

  /**
   * Creates the lease only if no key exists for the subnet (a transaction
   * in etcd); throws SubnetTakenError otherwise. ttlSeconds 0 = no TTL.
   * Returns the expiration (null without TTL).
   */
  createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null>;

  /** Writes (renews) an existing lease with a fresh TTL; ttlSeconds 0 keeps it a reservation. */
  updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null>;

  deleteLease(subnet: Cidr4): Promise<void>;

  getLease(subnet: Cidr4): Promise<Lease | null>;

  /** Every valid lease, and the cursor to watch from. Malformed keys/values are skipped with a warning naming the key. */
  listLeases(): Promise<{ leases: Lease[]; cursor: string }>;

  /**
   * Changes after `cursor`, until `signal` aborts. Survives store outages:
   * reconnects with backoff (100 ms doubling to 5 s) and resumes from the
   * last cursor, or yields a snapshot when it cannot (compaction).
   */
  watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch>;

  close(): Promise<void>;
}
