// What the udp and vxlan backends share: the engine is their forwarding
// state, one FIB entry per peer, and a peer's lease maps onto an entry
// directly (vxlan adds the VtepMAC).
import { type Cidr4, formatCidr4, formatIp4 } from '../cidr';
import { Engine, type FibPeer, overlayMtu } from '../engine';
import type { Logger } from '../log';
import type { NativeStats } from '../native';
import type { Lease, LeaseBackend } from '../store/types';
import type { Backend, PeerState } from './types';

/** The TUN MTU for an underlay MTU, refused below IPv4's 576 with the numbers that say why. */
export function tunMtu(backend: 'udp' | 'vxlan', underlayMtu: number, where: string): number {
  const mtu = overlayMtu(backend, underlayMtu);
  if (mtu < 576) throw new Error(`MTU of ${where} (${underlayMtu}) leaves ${mtu} for the overlay; need >= 576`);
  return mtu;
}

export function fibPeerOf(lease: Lease): FibPeer {
  return { subnet: lease.subnet, publicIp: lease.publicIp, ...(lease.backend.type === 'vxlan' ? { vtepMac: lease.backend.vtepMac } : {}) };
}

export class EngineBackend implements Backend {
  constructor(
    protected readonly engine: Engine,
    readonly leaseBackend: LeaseBackend,
    protected readonly log: Logger,
  ) {}

  get mtu(): number {
    return this.engine.mtu;
  }

  get device(): string {
    return this.engine.tunName;
  }

  async start(network: Cidr4, lease: Lease): Promise<void> {
    const replaced = await this.engine.start(network, lease.subnet);
    if (replaced) this.log.warn(`replaced the route ${replaced} with ${formatCidr4(network)} dev ${this.engine.tunName}`);
    this.log.info({ tun: this.engine.tunName, mtu: this.engine.mtu, port: this.engine.port }, `data plane up on ${this.engine.tunName}`);
  }

  setPeers(peers: Lease[]): void {
    this.engine.setPeers(peers.map(fibPeerOf));
  }

  updatePeers(upserts: Lease[], removed: Cidr4[]): void {
    this.engine.updatePeers(upserts.map(fibPeerOf), removed);
  }

  peers(): PeerState[] {
    return this.engine.peers().map((p) => ({
      subnet: formatCidr4(p.subnet),
      publicIp: formatIp4(p.publicIp),
      ...(p.vtepMac ? { vtepMac: p.vtepMac } : {}),
      via: 'engine' as const,
    }));
  }

  stats(): NativeStats {
    return this.engine.stats();
  }

  close(): void {
    this.engine.close();
  }
}
