// flannel's host-gw backend (pkg/backend/hostgw): no device and no
// encapsulation. Every peer subnet is routed through the peer's PublicIP on
// the external link, `ip route replace <subnet> via <PublicIP> dev <ext>`, so
// the nodes must share an L2 segment. MTU = the interface's. A route someone
// deletes comes back within 10 s, as flannel's route check does it.
import { type Cidr4, formatCidr4, formatIp4 } from '../cidr';
import type { Lease } from '../store/types';
import { KernelRoutes } from './routes';
import type { Backend, BackendOptions, PeerState } from './types';

const ROUTE_CHECK_MS = 10_000;

export function openHostGw(o: BackendOptions): Backend {
  if (o.ext.publicIp !== o.ext.ifaceAddr) {
    // flannel's words: host-gw routes through the PublicIP, which must be this link's own address.
    throw new Error("your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend");
  }
  return new HostGw(o);
}

class HostGw implements Backend {
  readonly leaseBackend = { type: 'host-gw' as const };
  readonly device = null;
  readonly mtu: number;
  private readonly routes: KernelRoutes;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: BackendOptions) {
    this.mtu = o.ext.mtu;
    this.routes = new KernelRoutes(o.log, { index: o.ext.index, name: o.ext.name });
  }

  async start(): Promise<void> {
    this.timer = setInterval(() => this.routes.recover(), ROUTE_CHECK_MS);
    this.timer.unref();
  }

  setPeers(peers: Lease[]): void {
    this.updatePeers(peers, []);
  }

  updatePeers(upserts: Lease[], removed: Cidr4[]): void {
    const detail = upserts.length + removed.length <= 10 ? this.o.log.info.bind(this.o.log) : this.o.log.debug.bind(this.o.log);
    for (const s of removed) detail(`Subnet removed: ${formatCidr4(s)}`);
    this.routes.remove(removed);
    for (const l of upserts) detail(`Subnet added: ${formatCidr4(l.subnet)} via ${formatIp4(l.publicIp)}`);
    this.routes.ensure(upserts.map((l) => ({ subnet: l.subnet, gateway: l.publicIp })));
  }

  peers(): PeerState[] {
    return this.routes.present().map((r) => ({ subnet: formatCidr4(r.subnet), publicIp: formatIp4(r.gateway), via: 'route' as const }));
  }

  stats(): null {
    return null;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
