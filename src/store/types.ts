// The lease registry: flannel's key/value layout behind one interface, with
// two implementations (etcd v3, and an embedded SQLite file for one host).
// Values are flannel's: a weft node and a flannel node can share one store.
//
// A lease is decoded and checked once, here at the store boundary
// (lease-json.ts); everything above works on the typed Lease below and never
// re-parses text. The subnet manager (src/subnet/manager.ts) builds flannel's
// acquisition and renewal on top of this interface.
import type { Cidr4 } from '../cidr';

/** What a lease says about its node's backend (flannel's BackendType + BackendData). */
export type LeaseBackend =
  /** flannel's udp leases carry no BackendType at all. */
  | { type: 'udp' }
  | { type: 'vxlan'; vni: number; /** lowercase, colon separated */ vtepMac: string }
  | { type: 'host-gw' }
  /** Any backend weft does not run (ipip, wireguard, ...): kept so it can be ignored by name. */
  | { type: 'other'; name: string };

export interface Lease {
  subnet: Cidr4;
  /** The node's public IPv4 address (host order). */
  publicIp: number;
  backend: LeaseBackend;
  /**
   * When the lease lapses; null for a reservation (a key with no TTL);
   * EXPIRATION_NOT_READ when a list was asked not to look it up.
   */
  expiration: Date | null;
}

/**
 * A lease that has a TTL the store did not look up (listLeases with
 * `expirations: false`): not null, so it is not taken for a reservation,
 * and not a time (getTime() is NaN), so nothing can schedule by it.
 */
export const EXPIRATION_NOT_READ: Date = new Date(Number.NaN);

/** Our own lease's content: what we publish. */
export type LeaseAttrs = Pick<Lease, 'publicIp' | 'backend'>;

export type LeaseEvent =
  | { type: 'added'; lease: Lease }
  /** `expired`: the store let it lapse (a TTL ran out); `deleted`: someone removed it. */
  | { type: 'removed'; subnet: Cidr4; cause: 'deleted' | 'expired' };

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
  /** Names the store for logs: "etcd http://10.0.0.5:2379" or "embedded store /var/lib/weft/leases.db". */
  readonly description: string;

  /**
   * Creates the lease only if no key exists for the subnet (a transaction
   * in etcd); throws SubnetTakenError otherwise. ttlSeconds 0 = no TTL.
   * Returns the expiration (null without TTL).
   */
  createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null>;

  /** Writes (renews) an existing lease with a fresh TTL; ttlSeconds 0 keeps it a reservation. */
  updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null>;

  deleteLease(subnet: Cidr4): Promise<void>;

  /**
   * Every valid lease, and the cursor to watch from. Malformed keys/values
   * are skipped with a warning naming the key. `expirations: false` is for
   * callers that need a lease's expiration only to tell a reservation from
   * a lease (acquisition, the peer list): etcd needs a call per lease to
   * read one, which at thousands of leases is seconds of start-up.
   */
  listLeases(opts?: { expirations?: boolean }): Promise<{ leases: Lease[]; cursor: string }>;

  /**
   * Changes after `cursor`, until `signal` aborts. Survives store outages:
   * reconnects with backoff (100 ms doubling to 5 s) and resumes from the
   * last cursor, or yields a snapshot when it cannot (compaction).
   */
  watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch>;

  close(): Promise<void>;
}
