// The Engine: one overlay data plane on this node (the udp and vxlan
// backends' forwarding state).
//
// It owns what it creates and nothing else: the TUN (flannel0 for udp,
// flannel.<VNI> for vxlan), the address and route on it, the UDP socket and
// the native threads. Life in two steps, so that nothing is leased before the
// device is ours: open() claims the TUN name and binds the socket (a clash
// names what holds the name or the port); start() puts the lease's address
// and the Network route on the TUN and starts the threads. The TUN is not
// persistent, so even a crash removes it and its routes with it.
//
// The FIB takes deltas: peers come and go one lease at a time, and a change
// costs in proportion to what changed. The table crosses into the addon as
// one Uint32Array of numbers (FIB_WORDS per peer), with no per-peer object
// or string for the native side to read: 5,000 peers are one 100 KB copy.
// What `peers()` returns is read back from the native FIB, so `weft status`
// shows what the engine holds.
import { promises as fs, readdirSync, readFileSync, readlinkSync } from 'node:fs';

import { type Cidr4, formatCidr4, formatIp4 } from './cidr';
import { addon, FIB_WORDS, type NativeEngine, type NativeEngineOptions, type NativeStats, type WireFormat } from './native';

/** One forwarding entry: the peer that owns `subnet`. */
export interface FibPeer {
  subnet: Cidr4;
  publicIp: number;
  /** vxlan only: the peer's VtepMAC. */
  vtepMac?: string;
}

/** Options the engine hands to the addon as they are (documented on NativeEngineOptions). */
type PassedToAddon =
  | 'vtepMac'
  | 'batch'
  | 'offload'
  | 'allowAnySource'
  | 'strictSource'
  | 'batchBytes'
  | 'zeroCopy'
  | 'sendRuns'
  | 'threads'
  | 'busyPollUs'
  | 'tunQueue';

export interface EngineOptions extends Pick<NativeEngineOptions, PassedToAddon> {
  backend: WireFormat;
  /** The underlay address the UDP socket binds (host order). */
  bindIp: number;
  port: number;
  /** The TUN's MTU (the underlay MTU minus the encapsulation, see overlayMtu). */
  mtu: number;
  vni?: number;
  tunName?: string;
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

/** The TUN MTU for an underlay MTU: flannel's iface-28 (udp) and iface-50 (vxlan). */
export function overlayMtu(backend: WireFormat, underlayMtu: number): number {
  return underlayMtu - addon.encap.overhead[backend];
}

export class Engine {
  private closed = false;
  private started = false;

  private constructor(
    private readonly native: NativeEngine,
    readonly backend: WireFormat,
    readonly tunName: string,
    readonly mtu: number,
    readonly bindIp: number,
    readonly port: number,
    readonly vtepMac: string | undefined,
  ) {}

  /** Claims the TUN name and binds the UDP socket; routes nothing yet. */
  static open(o: EngineOptions): Engine {
    if (o.backend === 'vxlan' && !o.vtepMac) throw new EngineError('vxlan needs a VtepMAC', 'EINVAL');
    if (o.mtu < 576) throw new EngineError(`overlay MTU ${o.mtu} is below 576`, 'EINVAL');
    if (o.strictSource && o.allowAnySource) {
      throw new EngineError(
        "--strict-source cannot be combined with --allow-any-source: behind NAT a datagram's source is not the peer's public IP, so every packet would be dropped",
        'EINVAL',
      );
    }
    const tunName = o.tunName ?? defaultTunName(o.backend, o.vni);
    const bindIp = formatIp4(o.bindIp);
    let native: NativeEngine;
    try {
      const { backend, bindIp: localIp, port, mtu, vni, tunName: _, ...passed } = o;
      native = new addon.Engine({ ...passed, format: backend, tunName, mtu, localIp, port, vni: vni ?? 1 });
    } catch (err) {
      const code = errCode(err);
      if (code === 'EADDRINUSE') {
        throw new EngineError(`UDP port ${o.port} on ${bindIp} is already in use (EADDRINUSE)`, code);
      }
      if (code === 'EADDRNOTAVAIL') {
        throw new EngineError(`address ${bindIp} is not on this node, cannot bind UDP port ${o.port} (EADDRNOTAVAIL)`, code);
      }
      if (code === 'EBUSY' || code === 'EEXIST') throw new EngineError(`cannot create TUN device ${tunName}: ${describeNameHolder(tunName)}`, code);
      throw new EngineError(`cannot open the data plane: ${(err as Error).message}`, code);
    }
    return new Engine(native, o.backend, tunName, o.mtu, o.bindIp, o.port, o.vtepMac);
  }

  /**
   * ip link set <tun> mtu M; ip addr replace <subnet .0>/32 dev <tun>; ip link set <tun> up;
   * ip route replace <Network> dev <tun> (the node's own subnet is more specific and
   * stays on cni0); then the threads. Returns the route it replaced, if one to the
   * Network went elsewhere (the caller says so in the log).
   */
  async start(network: Cidr4, subnet: Cidr4): Promise<string | null> {
    const nl = addon.netlink;
    const tun = nl.linkGet(this.tunName);
    // The overlay is IPv4 only; keep the kernel's IPv6 chatter out of the TUN.
    await fs.writeFile(`/proc/sys/net/ipv6/conf/${this.tunName}/disable_ipv6`, '1').catch(() => undefined);
    nl.linkSetMtu(tun.index, this.mtu);
    nl.addrReplace(tun.index, formatIp4(subnet.ip), 32);
    nl.linkSetUp(tun.index, true);
    const dst = formatIp4(network.ip);
    const other = nl.routeList().find((r) => r.dst === dst && r.dstLen === network.prefixLen && r.oif !== tun.index);
    nl.routeReplace({ dst, dstLen: network.prefixLen, oif: tun.index });
    this.native.start({ prefix: subnet.ip, prefixLen: subnet.prefixLen });
    this.started = true;
    return other ? `${formatCidr4(network)}${other.gateway ? ` via ${other.gateway}` : ''}${other.oif ? ` dev #${other.oif}` : ''}` : null;
  }

  get running(): boolean {
    return this.started && !this.closed;
  }

  /** Replaces the whole FIB (start-up, and a store's snapshot). */
  setPeers(peers: FibPeer[]): void {
    this.native.setPeers(this.pack(peers));
  }

  /** Adds or changes some peers and removes others, by subnet. */
  updatePeers(upserts: FibPeer[], removed: Cidr4[]): void {
    const keys = new Uint32Array(removed.length * 2);
    removed.forEach((c, i) => {
      keys[i * 2] = c.ip;
      keys[i * 2 + 1] = c.prefixLen;
    });
    this.native.updatePeers(this.pack(upserts), keys);
  }

  /** What the native FIB holds now. */
  peers(): FibPeer[] {
    const w = this.native.peers();
    const out: FibPeer[] = [];
    for (let i = 0; i < w.length; i += FIB_WORDS) {
      const p: FibPeer = { subnet: { ip: w[i], prefixLen: w[i + 1] }, publicIp: w[i + 2] };
      if (this.backend === 'vxlan') p.vtepMac = formatMacWords(w[i + 3], w[i + 4]);
      out.push(p);
    }
    return out;
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

  /** The peers as the addon takes them (FIB_WORDS each); the port is the engine's own. */
  private pack(peers: FibPeer[]): Uint32Array {
    const w = new Uint32Array(peers.length * FIB_WORDS);
    let at = 0;
    for (const p of peers) {
      w[at] = p.subnet.ip;
      w[at + 1] = p.subnet.prefixLen;
      w[at + 2] = p.publicIp;
      if (this.backend === 'vxlan') {
        if (!p.vtepMac || !MAC.test(p.vtepMac)) {
          throw new EngineError(`peer ${formatCidr4(p.subnet)} has ${p.vtepMac ? `an invalid VtepMAC "${p.vtepMac}"` : 'no VtepMAC'}`, 'EINVAL');
        }
        const mac = p.vtepMac;
        w[at + 3] = parseInt(mac.slice(0, 2) + mac.slice(3, 5), 16);
        w[at + 4] = parseInt(mac.slice(6, 8) + mac.slice(9, 11) + mac.slice(12, 14) + mac.slice(15, 17), 16);
      }
      at += FIB_WORDS;
    }
    return w;
  }
}

const MAC = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

function formatMacWords(hi: number, lo: number): string {
  const hex = (hi.toString(16).padStart(4, '0') + lo.toString(16).padStart(8, '0')).match(/../g)!;
  return hex.join(':');
}

/**
 * What holds a link name we could not take for our TUN: a link of another
 * kind, a TUN some process has open (found through /proc/<pid>/fdinfo, whose
 * `iff:` line names the device), or a persistent TUN nobody holds.
 */
export function describeNameHolder(name: string): string {
  let kind: string | undefined;
  try {
    kind = addon.netlink.linkGet(name).kind;
  } catch {
    return 'the kernel refused the name (it may have been removed meanwhile; try again)';
  }
  if (kind !== 'tun') return `a link of kind ${kind ?? 'unknown'} already has this name (ip -d link show ${name})`;
  const holders = tunHolders(name);
  if (holders.length === 0) return `a persistent TUN device with this name exists and no process holds it (remove it: ip link del ${name})`;
  return `it is held by ${holders.map((h) => `process ${h.pid} (${h.comm})`).join(', ')}`;
}

/** Processes in our network namespace (link names are per namespace) with a TUN fd attached to `name`. */
function tunHolders(name: string): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  const ourNet = readlinkSync('/proc/self/ns/net');
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== ourNet) continue;
    } catch {
      continue; // gone, or not ours to read
    }
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let info: string;
      try {
        info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        continue;
      }
      if (info.includes(`\niff:\t${name}\n`)) {
        let comm = '?';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          // it exited meanwhile
        }
        out.push({ pid: Number(pid), comm });
        break;
      }
    }
  }
  return out;
}
