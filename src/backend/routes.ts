// Peer routes in the kernel's main table, kept the way flannel keeps them
// (pkg/backend/route_network.go): host-gw's `<subnet> via <PublicIP> dev
// <ext>`, and vxlan DirectRouting's `<subnet> via <PublicIP>`.
//   - adding: an existing route to the subnet with another gateway or link is
//     replaced ("Replacing existing route to ... with ..."), an identical one
//     is kept ("Route to ... already exists, skipping.");
//   - removing: the route goes ("Subnet removed: ..."), a failure is logged;
//   - recover(): every route that should be there and is not is added again
//     ("Route recovered ..."): host-gw runs it every 10 s, as flannel does.
// The routes stay when the daemon stops, as flannel leaves them: traffic
// keeps flowing through a restart.
import { type Cidr4, formatCidr4, formatIp4, parseIp4 } from '../cidr';
import type { Logger } from '../log';
import { addon, type NativeNetlink, type NetlinkRouteInfo } from '../native';
import { subnetKey } from '../subnet/key';

export interface PeerRoute {
  subnet: Cidr4;
  gateway: number;
}

export class KernelRoutes {
  private readonly wanted = new Map<string, PeerRoute>();

  constructor(
    private readonly log: Logger,
    /** host-gw names the external link; DirectRouting lets the kernel pick it. */
    private readonly link: { index: number; name: string } | null,
    private readonly nl: NativeNetlink = addon.netlink,
  ) {}

  /** `ip route` form of a route, for logs. */
  describe(r: PeerRoute): string {
    return `${formatCidr4(r.subnet)} via ${formatIp4(r.gateway)}${this.link ? ` dev ${this.link.name}` : ''}`;
  }

  /**
   * Makes each route be there, listing the kernel's routes once for the
   * whole batch. Per-route lines are info for a handful, debug for thousands.
   */
  ensure(routes: PeerRoute[]): void {
    if (routes.length === 0) return;
    const present = this.byDst();
    const detail = routes.length <= 10 ? this.log.info.bind(this.log) : this.log.debug.bind(this.log);
    for (const r of routes) {
      this.wanted.set(subnetKey(r.subnet), r);
      const existing = present.get(subnetKey(r.subnet));
      if (existing && this.equal(existing, r)) {
        detail(`Route to ${this.describe(r)} already exists, skipping.`);
        continue;
      }
      try {
        if (existing) {
          this.log.warn(`Replacing existing route to ${describeInfo(existing)} with ${this.describe(r)}`);
          this.nl.routeDel(existing);
        }
        this.nl.routeAdd(this.request(r));
      } catch (err) {
        this.log.error({ err: (err as Error).message }, `Error adding route to ${this.describe(r)}: ${(err as Error).message}`);
      }
    }
  }

  /** Removes the routes to these subnets (only those this set added). */
  remove(subnets: Cidr4[]): void {
    for (const s of subnets) {
      const r = this.wanted.get(subnetKey(s));
      if (!r) continue;
      this.wanted.delete(subnetKey(s));
      try {
        this.nl.routeDel(this.request(r));
      } catch (err) {
        if ((err as { code?: string }).code !== 'ESRCH') {
          this.log.error({ err: (err as Error).message }, `Error deleting route to ${formatCidr4(s)}: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Adds back every route someone deleted. */
  recover(): void {
    let present: Map<string, NetlinkRouteInfo>;
    try {
      present = this.byDst();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, `Error fetching route list. Will automatically retry: ${(err as Error).message}`);
      return;
    }
    for (const [key, r] of this.wanted) {
      const existing = present.get(key);
      if (existing && this.equal(existing, r)) continue;
      try {
        this.nl.routeAdd(this.request(r));
        this.log.info(`Route recovered ${formatCidr4(r.subnet)} : ${formatIp4(r.gateway)}`);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, `Error recovering route to ${formatCidr4(r.subnet)}: ${formatIp4(r.gateway)}, ${(err as Error).message}`);
      }
    }
  }

  /** Whether this set keeps a route to the subnet. */
  has(subnet: Cidr4): boolean {
    return this.wanted.has(subnetKey(subnet));
  }

  /** The routes this set keeps that the kernel has now, read back. */
  present(): PeerRoute[] {
    const kernel = this.byDst();
    const out: PeerRoute[] = [];
    for (const [key, r] of this.wanted) {
      const k = kernel.get(key);
      if (k && this.equal(k, r)) out.push(r);
    }
    return out;
  }

  private request(r: PeerRoute) {
    return { dst: formatIp4(r.subnet.ip), dstLen: r.subnet.prefixLen, gateway: formatIp4(r.gateway), ...(this.link ? { oif: this.link.index } : {}) };
  }

  private equal(k: NetlinkRouteInfo, r: PeerRoute): boolean {
    return k.gateway === formatIp4(r.gateway) && (!this.link || k.oif === this.link.index);
  }

  private byDst(): Map<string, NetlinkRouteInfo> {
    const m = new Map<string, NetlinkRouteInfo>();
    for (const k of this.nl.routeList()) {
      const key = subnetKey({ ip: parseIp4(k.dst), prefixLen: k.dstLen });
      if (!m.has(key)) m.set(key, k);
    }
    return m;
  }
}

function describeInfo(k: NetlinkRouteInfo): string {
  return `${k.dst}/${k.dstLen}${k.gateway ? ` via ${k.gateway}` : ''}${k.oif ? ` dev #${k.oif}` : ''}`;
}
