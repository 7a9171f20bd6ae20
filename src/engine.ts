// The Engine: one overlay data plane on this node.
//
// It owns what it creates and nothing else: the TUN (flannel0 for udp,
// flannel.<VNI> for vxlan), the address and route on it, and the native
// threads. The TUN is not persistent, so even a crash removes it and its
// routes with it. Interface, address and port problems are found before any
// of that is created, and reported naming the thing that was wrong.
import { promises as fs } from 'node:fs';

import { type Cidr4, cidrContains, formatIp4, parseCidr4, parseIp4 } from './cidr';
import { addon, type NativeEngine, type NativeStats, type WireFormat } from './native';

export const DEFAULT_PORT: Record<WireFormat, number> = { udp: 8285, vxlan: 8472 };

export interface EngineOptions {
  backend: WireFormat;
  /** External (underlay) interface name. */
  iface: string;
  /** Underlay address the UDP socket binds; default: the interface's first global IPv4. */
  bindIp?: string;
  /** The whole overlay Network, routed into the TUN. */
  network: string;
  /** This node's subnet (its lease). */
  subnet: string;
  vni?: number;
  port?: number;
  /** Our VtepMAC (vxlan); required for vxlan. */
  vtepMac?: string;
  /** Underlay MTU to derive the TUN MTU from; default: the interface's MTU. */
  mtu?: number;
  tunName?: string;
  batch?: number;
  /** Offloads on (default) or off: off is the one-packet-per-syscall baseline. */
  offload?: boolean;
  /** Accept datagrams from any underlay address, not only peers' (flannel's behaviour, for NAT). */
  allowAnySource?: boolean;
  /** Accept an inner source only inside the subnet of the peer that sent it (not with allowAnySource). */
  strictSource?: boolean;
}

export interface Peer {
  subnet: string;
  publicIp: string;
  vtepMac?: string;
}

export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

function errCode(err: unknown): string {
  return (err as { code?: string }).code ?? 'EUNKNOWN';
}

export function defaultTunName(backend: WireFormat, vni = 1): string {
  return backend === 'udp' ? 'flannel0' : `flannel.${vni}`;
}

export class Engine {
  private closed = false;

  private constructor(
    private readonly native: NativeEngine,
    readonly backend: WireFormat,
    readonly tunName: string,
    readonly tunIndex: number,
    readonly mtu: number,
    readonly bindIp: string,
    readonly port: number,
    readonly network: Cidr4,
    readonly subnet: Cidr4,
    readonly vtepMac: string | undefined,
  ) {}

  static async create(o: EngineOptions): Promise<Engine> {
    const nl = addon.netlink;
    const network = parseCidr4(o.network);
    const subnet = parseCidr4(o.subnet);
    if (!cidrContains(network, subnet.ip) || subnet.prefixLen < network.prefixLen) {
      throw new EngineError(`subnet ${o.subnet} is not inside the Network ${o.network}`, 'EINVAL');
    }
    if (o.backend === 'vxlan' && !o.vtepMac) throw new EngineError('vxlan needs a VtepMAC', 'EINVAL');
    if (o.strictSource && o.allowAnySource) {
      throw new EngineError(
        "--strict-source cannot be combined with --allow-any-source: behind NAT a datagram's source is not the peer's public IP, so every packet would be dropped",
        'EINVAL',
      );
    }

    let link;
    try {
      link = nl.linkGet(o.iface);
    } catch (err) {
      throw new EngineError(`interface "${o.iface}" not found (${errCode(err)})`, errCode(err));
    }
    const bindIp = o.bindIp ?? nl.addrList(link.index).find((a) => a.scope === 0)?.address;
    if (!bindIp) throw new EngineError(`interface "${o.iface}" has no global IPv4 address`, 'EADDRNOTAVAIL');
    parseIp4(bindIp);
    const overhead = addon.encap.overhead[o.backend];
    const mtu = (o.mtu ?? link.mtu) - overhead;
    if (mtu < 576) {
      throw new EngineError(`MTU of "${o.iface}" (${o.mtu ?? link.mtu}) leaves ${mtu} for the overlay; need >= 576`, 'EINVAL');
    }
    const port = o.port || DEFAULT_PORT[o.backend];
    const tunName = o.tunName ?? defaultTunName(o.backend, o.vni);

    let native: NativeEngine;
    try {
      native = new addon.Engine({
        format: o.backend,
        tunName,
        mtu,
        localIp: bindIp,
        port,
        vni: o.vni ?? 1,
        vtepMac: o.vtepMac,
        batch: o.batch,
        offload: o.offload,
        allowAnySource: o.allowAnySource,
        subnet: { prefix: formatIp4(subnet.ip), prefixLen: subnet.prefixLen },
        strictSource: o.strictSource,
      });
    } catch (err) {
      const code = errCode(err);
      if (code === 'EADDRINUSE') {
        throw new EngineError(`UDP port ${port} on ${bindIp} is already in use (EADDRINUSE)`, code);
      }
      if (code === 'EADDRNOTAVAIL') {
        throw new EngineError(`address ${bindIp} is not on this node, cannot bind UDP port ${port} (EADDRNOTAVAIL)`, code);
      }
      if (code === 'EBUSY') throw new EngineError(`TUN device ${tunName} is in use by another process (EBUSY)`, code);
      throw new EngineError(`cannot open the data plane: ${(err as Error).message}`, code);
    }

    try {
      const tun = nl.linkGet(tunName);
      // The overlay is IPv4 only; keep the kernel's IPv6 chatter out of the TUN.
      await fs.writeFile(`/proc/sys/net/ipv6/conf/${tunName}/disable_ipv6`, '1').catch(() => undefined);
      nl.linkSetMtu(tun.index, mtu);
      // ip addr replace <subnet IP>/32 dev <tun>; ip link set <tun> up
      nl.addrReplace(tun.index, formatIp4(subnet.ip), 32);
      nl.linkSetUp(tun.index, true);
      // ip route replace <Network> dev <tun>: the node's own subnet is more
      // specific and stays on cni0.
      nl.routeReplace({ dst: formatIp4(network.ip), dstLen: network.prefixLen, oif: tun.index });
      native.start();
      return new Engine(native, o.backend, tunName, tun.index, mtu, bindIp, port, network, subnet, o.vtepMac);
    } catch (err) {
      native.close();
      throw err;
    }
  }

  /** Replaces the whole peer table. */
  setPeers(peers: Peer[]): void {
    this.native.setPeers(peers.map((p) => this.toNative(p)));
  }

  /** Adds or changes some peers and removes others (by subnet). */
  updatePeers(upserts: Peer[], removedSubnets: string[]): void {
    this.native.updatePeers(
      upserts.map((p) => this.toNative(p)),
      removedSubnets.map((s) => {
        const c = parseCidr4(s);
        return { prefix: formatIp4(c.ip), prefixLen: c.prefixLen };
      }),
    );
  }

  peers(): Peer[] {
    return this.native.peers().map((p) => ({
      subnet: `${p.prefix}/${p.prefixLen}`,
      publicIp: p.publicIp,
      ...(this.backend === 'vxlan' ? { vtepMac: p.vtepMac } : {}),
    }));
  }

  stats(): NativeStats {
    return this.native.stats();
  }

  /** Stops the threads and removes the TUN, its address and route. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }

  private toNative(p: Peer) {
    const c = parseCidr4(p.subnet);
    parseIp4(p.publicIp);
    if (this.backend === 'vxlan' && !p.vtepMac) throw new EngineError(`peer ${p.subnet} has no VtepMAC`, 'EINVAL');
    return { prefix: formatIp4(c.ip), prefixLen: c.prefixLen, publicIp: p.publicIp, port: this.port, vtepMac: p.vtepMac };
  }
}
