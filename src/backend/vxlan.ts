// flannel's vxlan backend on weft's engine: TUN flannel.<VNI>, RFC 7348
// frames a Linux vxlan device with flannel's settings accepts (and sends),
// port 8472, MTU = (Backend.MTU or the interface's) - 50. The VtepMAC is
// random, locally administered and unicast, and kept across restarts (from
// our previous lease) so peers' entries for us stay valid.
//
// DirectRouting (flannel's, pkg/backend/vxlan/vxlan_network.go): a peer whose
// PublicIP the kernel reaches without a gateway (`ip route get` gives one
// route, no `via`) is on our L2 segment and gets a plain route instead,
// `<subnet> via <PublicIP>`: no encapsulation at all. Other peers stay on
// the engine. Unlike flannel, which decides once per lease event, the
// choice is made again every 10 s, so a peer whose underlay route changes
// moves between the two without a restart.
import { type Cidr4, formatCidr4, formatIp4 } from '../cidr';
import { Engine } from '../engine';
import { addon } from '../native';
import type { Lease } from '../store/types';
import { subnetKey } from '../subnet/key';
import { isUnicastMac, randomVtepMac } from '../vtep';
import { EngineBackend, fibPeerOf, tunMtu } from './engine-backend';
import { KernelRoutes } from './routes';
import type { Backend, BackendOptions, PeerState } from './types';

const RECHECK_MS = 10_000;

export function openVxlan(o: BackendOptions): Backend {
  const b = o.cfg.Backend;
  if (b.Type !== 'vxlan') throw new Error('vxlan backend given another config');
  if (b.MTU !== undefined && b.MTU > o.ext.mtu) {
    throw new Error(`net-conf Backend.MTU ${b.MTU} is larger than the MTU of "${o.ext.name}" (${o.ext.mtu}): the underlay cannot carry it; lower it or leave it out`);
  }
  const prev = o.previous;
  const reuse = prev?.type === 'vxlan' && isUnicastMac(prev.vtepMac) ? prev.vtepMac : null;
  const vtepMac = reuse ?? randomVtepMac();
  if (reuse) o.log.info({ vtepMac }, `reusing VtepMAC ${vtepMac} from our previous lease`);
  const engine = Engine.open({
    backend: 'vxlan',
    bindIp: o.ext.ifaceAddr,
    port: b.Port,
    vni: b.VNI,
    vtepMac,
    mtu: tunMtu('vxlan', b.MTU ?? o.ext.mtu, b.MTU !== undefined ? 'Backend.MTU' : `"${o.ext.name}"`),
    allowAnySource: o.allowAnySource,
    strictSource: o.strictSource,
  });
  const leaseBackend = { type: 'vxlan' as const, vni: b.VNI, vtepMac };
  return b.DirectRouting ? new DirectRoutingVxlan(engine, leaseBackend, o) : new EngineBackend(engine, leaseBackend, o.log);
}

class DirectRoutingVxlan extends EngineBackend {
  private readonly routes: KernelRoutes;
  private readonly leases = new Map<string, Lease>();
  private readonly direct = new Set<string>();
  private timer?: NodeJS.Timeout;

  constructor(engine: Engine, leaseBackend: { type: 'vxlan'; vni: number; vtepMac: string }, o: BackendOptions) {
    super(engine, leaseBackend, o.log);
    this.routes = new KernelRoutes(o.log, null);
  }

  override async start(network: Cidr4, lease: Lease): Promise<void> {
    await super.start(network, lease);
    this.timer = setInterval(() => this.recheck(), RECHECK_MS);
    this.timer.unref();
  }

  override setPeers(peers: Lease[]): void {
    this.leases.clear();
    this.direct.clear();
    const tunnelled: Lease[] = [];
    const routed: Lease[] = [];
    for (const l of peers) {
      this.leases.set(subnetKey(l.subnet), l);
      if (this.isDirect(l)) {
        this.direct.add(subnetKey(l.subnet));
        routed.push(l);
      } else {
        tunnelled.push(l);
      }
    }
    this.engine.setPeers(tunnelled.map(fibPeerOf));
    this.routes.ensure(routed.map((l) => ({ subnet: l.subnet, gateway: l.publicIp })));
  }

  override updatePeers(upserts: Lease[], removed: Cidr4[]): void {
    const toEngine: Lease[] = [];
    const fromEngine: Cidr4[] = [];
    const routeAdd: Lease[] = [];
    const routeDel: Cidr4[] = [];
    for (const s of removed) {
      const k = subnetKey(s);
      this.leases.delete(k);
      if (this.direct.delete(k)) routeDel.push(s);
      else fromEngine.push(s);
    }
    for (const l of upserts) {
      const k = subnetKey(l.subnet);
      this.leases.set(k, l);
      const was = this.direct.has(k);
      if (this.isDirect(l)) {
        this.direct.add(k);
        if (!was) fromEngine.push(l.subnet);
        routeAdd.push(l);
      } else {
        this.direct.delete(k);
        if (was) routeDel.push(l.subnet);
        toEngine.push(l);
      }
    }
    // Remove first: a subnet moving from one path to the other is never on both.
    this.routes.remove(routeDel);
    this.engine.updatePeers(toEngine.map(fibPeerOf), fromEngine);
    this.routes.ensure(routeAdd.map((l) => ({ subnet: l.subnet, gateway: l.publicIp })));
  }

  override peers(): PeerState[] {
    const routed = this.routes.present().map((r) => {
      const l = this.leases.get(subnetKey(r.subnet));
      return {
        subnet: formatCidr4(r.subnet),
        publicIp: formatIp4(r.gateway),
        ...(l?.backend.type === 'vxlan' ? { vtepMac: l.backend.vtepMac } : {}),
        via: 'route' as const,
      };
    });
    return [...super.peers(), ...routed];
  }

  override close(): void {
    clearInterval(this.timer);
    super.close();
  }

  /** Re-decides every peer's path; moves the ones whose answer changed. */
  private recheck(): void {
    const moved = [...this.leases.values()].filter((l) => this.isDirect(l) !== this.direct.has(subnetKey(l.subnet)));
    if (moved.length > 0) this.updatePeers(moved, []);
    this.routes.recover();
  }

  /** flannel's ip.DirectRouting: the kernel reaches PublicIP through no gateway. */
  private isDirect(l: Lease): boolean {
    try {
      return !addon.netlink.routeGet(formatIp4(l.publicIp)).gateway;
    } catch {
      return false; // unreachable now: the engine's path is the safe one
    }
  }
}
