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
// moves between the two without a restart (and a deleted route comes back).
import { type Cidr4, formatCidr4, formatIp4, parseCidr4 } from '../cidr';
import { Engine } from '../engine';
import { addon } from '../native';
import type { Lease } from '../store/types';
import { subnetKey } from '../subnet/key';
import { isUnicastMac, randomVtepMac } from '../vtep';
import { EngineBackend, tunMtu } from './engine-backend';
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

  // Every peer stays in the engine's FIB, direct or not: a direct route is
  // more specific than the Network's route into the TUN, so nothing for a
  // direct peer reaches the engine on the way out, but the peer may still
  // send to us through its tunnel (its own view of the underlay can differ
  // from ours) and the engine accepts datagrams only from peers it knows.
  override setPeers(peers: Lease[]): void {
    this.leases.clear();
    for (const l of peers) this.leases.set(subnetKey(l.subnet), l);
    super.setPeers(peers);
    this.routes.ensure(peers.filter((l) => this.isDirect(l)).map((l) => ({ subnet: l.subnet, gateway: l.publicIp })));
  }

  override updatePeers(upserts: Lease[], removed: Cidr4[]): void {
    for (const s of removed) this.leases.delete(subnetKey(s));
    for (const l of upserts) this.leases.set(subnetKey(l.subnet), l);
    // Remove first: a subnet whose path changes is never routed twice.
    const tunnelled = upserts.filter((l) => !this.isDirect(l));
    this.routes.remove([...removed, ...tunnelled.map((l) => l.subnet)]);
    super.updatePeers(upserts, removed);
    this.routes.ensure(upserts.filter((l) => !tunnelled.includes(l)).map((l) => ({ subnet: l.subnet, gateway: l.publicIp })));
  }

  override peers(): PeerState[] {
    const routed = new Set(this.routes.present().map((r) => subnetKey(r.subnet)));
    return super.peers().map((p) => (routed.has(subnetKey(parseCidr4(p.subnet))) ? { ...p, via: 'route' as const } : p));
  }

  override close(): void {
    clearInterval(this.timer);
    super.close();
  }

  /** Re-decides every peer's path, moves the ones whose answer changed, and puts back deleted routes. */
  private recheck(): void {
    const moved = [...this.leases.values()].filter((l) => this.isDirect(l) !== this.routes.has(l.subnet));
    for (const l of moved) {
      this.log.info(`peer ${formatCidr4(l.subnet)} (${formatIp4(l.publicIp)}) is now reached ${this.isDirect(l) ? 'directly, by a route' : 'through the tunnel'}`);
    }
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
