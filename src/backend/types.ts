// Backends: flannel's backend registry behind one interface. A backend turns
// our lease into a device and an MTU, and peer lease changes into forwarding
// state: the engine's FIB (udp, vxlan), kernel routes (host-gw), or both
// (vxlan with DirectRouting). The daemon drives every backend the same way:
//
//   open (before the lease: claim the device, bind the port, refuse what
//   cannot work) -> start(lease) -> setPeers / updatePeers ... -> close.
import type { Cidr4 } from '../cidr';
import type { NetConf } from '../config/netconf';
import type { NativeStats } from '../native';
import type { Logger } from '../log';
import type { Lease, LeaseBackend } from '../store/types';

export interface ExternalLink {
  name: string;
  index: number;
  mtu: number;
  /** The address on the interface (the UDP socket binds here), host order. */
  ifaceAddr: number;
  /** What peers send to (--public-ip, else ifaceAddr), host order. */
  publicIp: number;
}

export interface BackendOptions {
  cfg: NetConf;
  ext: ExternalLink;
  /** What our previous lease said of this backend (the VtepMAC survives restarts). */
  previous: LeaseBackend | null;
  allowAnySource: boolean;
  strictSource: boolean;
  log: Logger;
}

/** One peer as the forwarding state holds it, read back (weft status). */
export interface PeerState {
  subnet: string;
  publicIp: string;
  vtepMac?: string;
  /** `engine`: encapsulated by weft's engine; `route`: a kernel route (host-gw, DirectRouting). */
  via: 'engine' | 'route';
}

export interface Backend {
  /** FLANNEL_MTU: the largest packet a pod on this node may send. */
  readonly mtu: number;
  /** What our lease publishes about this backend. */
  readonly leaseBackend: LeaseBackend;
  /** The overlay device, if the backend has one (flannel0, flannel.<VNI>). */
  readonly device: string | null;
  /** Our lease is ours: address, routes, threads. */
  start(network: Cidr4, lease: Lease): Promise<void>;
  /** The whole peer set (start-up); peers were admitted by src/daemon/peers.ts. */
  setPeers(peers: Lease[]): void;
  /** A change to the peer set, in proportion to what changed. */
  updatePeers(upserts: Lease[], removed: Cidr4[]): void;
  /** What the forwarding state holds now, read back from it. */
  peers(): PeerState[];
  /** The engine's counters and fatal error, for backends that run it. */
  stats(): NativeStats | null;
  /** Stops what it runs. The TUN goes with the engine; kernel routes stay, as flannel leaves them. */
  close(): void;
}

export type BackendFactory = (o: BackendOptions) => Backend;
