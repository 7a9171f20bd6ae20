// Lease sources: flannel's subnet managers behind one interface. The daemon
// asks a source for the network config, our lease, renewals and a watch of
// every lease; it never knows which source it talks to.
//   - RegistryLeaseSource (here): flannel's etcd subnet manager, over a
//     LeaseStore key/value registry (etcd v3, or the embedded SQLite file).
//   - KubeLeaseSource (kube.ts): flannel's kube subnet manager, over node
//     annotations and spec.podCIDR.
import { readFileSync } from 'node:fs';

import type { Cidr4 } from '../cidr';
import type { NetConf } from '../config/netconf';
import type { Logger } from '../log';
import { sleep } from '../sleep';
import type { EtcdStore } from '../store/etcd';
import { ConfigNotFoundError, type Lease, type LeaseAttrs, type LeaseBackend, type LeaseStore, SubnetTakenError, type WatchBatch } from '../store/types';
import { acquireLease } from './acquire';

export interface LeaseSource {
  /** Names where leases live, for the start-up log line. */
  readonly description: string;
  /**
   * True when leases are carved from the Network by the config's SubnetLen,
   * SubnetMin and SubnetMax (flannel's etcd manager: CheckNetworkConfig
   * applies, and every peer's subnet has SubnetLen); false when a subnet is
   * given from outside (kube: the node's podCIDR), so the config is only
   * parsed and a peer's subnet may have any length inside the Network.
   */
  readonly subnetsFromConfig: boolean;
  /**
   * The network config's text, and where it came from (for error messages).
   * publicIp: an address this node must publish in place of --public-ip
   * (kube: the node's node-public-ip annotation), if the source has one.
   */
  networkConfig(signal: AbortSignal): Promise<{ text: string; origin: string; publicIp?: string }>;
  /** What our last lease said of our backend (to keep the VtepMAC), if anything. */
  previousBackend(publicIp: number): Promise<LeaseBackend | null>;
  /** flannel's AcquireLease: ours by PublicIP, else subnet.env's, else a free one (kube: the node's podCIDR). */
  acquire(cfg: NetConf, attrs: LeaseAttrs, previousSubnet: Cidr4 | null): Promise<Lease>;
  /** After the data plane is up (kube: the NetworkUnavailable=False condition). */
  complete(lease: Lease): Promise<void>;
  /** A fresh expiration; null when the lease never expires. */
  renew(lease: Lease): Promise<Date | null>;
  /** Our lease vanished without an operator's delete: take the same subnet again; false if another node holds it. */
  recreate(lease: Lease): Promise<boolean>;
  /** True when the source can tell a lapse from a delete, so a lapse need not stop the daemon. */
  readonly lapsesAreRecoverable: boolean;
  list(): Promise<{ leases: Lease[]; cursor: string }>;
  watch(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch>;
  close(): Promise<void>;
}

export interface RegistryOptions {
  store: LeaseStore;
  /** etcd: <prefix>/config in the store; the embedded store: --net-config-path. */
  config: { fromStore: EtcdStore } | { fromFile: string };
  ttlSeconds: number;
  log: Logger;
}

export class RegistryLeaseSource implements LeaseSource {
  readonly description: string;
  readonly lapsesAreRecoverable: boolean;
  readonly subnetsFromConfig = true;
  private readonly store: LeaseStore;
  private readonly log: Logger;
  /**
   * The list previousBackend() read at start-up, which acquire() and list()
   * use too: start-up reads thousands of leases once, not three times. The
   * watch then starts from that list's cursor, so whatever changed since
   * (our own lease included) still arrives, as events.
   */
  private startup?: { leases: Lease[]; cursor: string; publicIp: number };

  constructor(private readonly o: RegistryOptions) {
    this.store = o.store;
    this.log = o.log;
    this.description = o.store.description;
    // etcd reports a lapse as a plain delete, so flannel's rule (a vanished
    // own key is a revocation) stands there; the embedded store says which it was.
    this.lapsesAreRecoverable = 'fromFile' in o.config;
  }

  async networkConfig(signal: AbortSignal): Promise<{ text: string; origin: string }> {
    const c = this.o.config;
    if ('fromFile' in c) {
      try {
        return { text: readFileSync(c.fromFile, 'utf8'), origin: c.fromFile };
      } catch (err) {
        throw new Error(`cannot read --net-config-path ${c.fromFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const origin = `${c.fromStore.prefix}/config`;
    let delay = 1000;
    for (;;) {
      signal.throwIfAborted();
      try {
        return { text: await c.fromStore.getNetworkConfig(), origin };
      } catch (err) {
        if (err instanceof ConfigNotFoundError) {
          this.log.error(err.message);
          delay = 1000; // flannel polls for the config every second
        } else {
          this.log.warn({ err: (err as Error).message }, `cannot read the network config, retrying in ${delay} ms: ${(err as Error).message}`);
        }
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 5000);
    }
  }

  async previousBackend(publicIp: number): Promise<LeaseBackend | null> {
    const listed = await this.store.listLeases({ expirations: false });
    this.startup = { ...listed, publicIp };
    return listed.leases.find((l) => l.publicIp === publicIp && l.backend.type !== 'other')?.backend ?? null;
  }

  acquire(cfg: NetConf, attrs: LeaseAttrs, previousSubnet: Cidr4 | null): Promise<Lease> {
    const listed = this.startup?.leases;
    return acquireLease(this.store, cfg, attrs, { previousSubnet, ttlSeconds: this.o.ttlSeconds, log: this.log, listed });
  }

  async complete(): Promise<void> {}

  renew(lease: Lease): Promise<Date | null> {
    return this.store.updateLease(lease.subnet, lease, lease.expiration === null ? 0 : this.o.ttlSeconds);
  }

  async recreate(lease: Lease): Promise<boolean> {
    try {
      await this.store.createLease(lease.subnet, lease, lease.expiration === null ? 0 : this.o.ttlSeconds);
      return true;
    } catch (err) {
      if (!(err instanceof SubnetTakenError)) throw err;
      // Taken: by another node, or by our own renewal, which re-puts it.
      const { leases } = await this.store.listLeases();
      const holder = leases.find((l) => l.subnet.ip === lease.subnet.ip && l.subnet.prefixLen === lease.subnet.prefixLen);
      return holder?.publicIp === lease.publicIp;
    }
  }

  async list(): Promise<{ leases: Lease[]; cursor: string }> {
    const startup = this.startup;
    this.startup = undefined;
    // What acquire() may have changed of ours (an incompatible lease it
    // deleted) is left out; our own lease is no peer either way.
    if (startup) return { leases: startup.leases.filter((l) => l.publicIp !== startup.publicIp), cursor: startup.cursor };
    // Peers' expirations are never read (a renewal changes no forwarding).
    return this.store.listLeases({ expirations: false });
  }

  watch(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch> {
    return this.store.watchLeases(cursor, signal);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
