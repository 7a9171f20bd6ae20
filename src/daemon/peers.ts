// Which leases become peers, and what a watch batch changes: pure functions
// of (the current peer set, a batch, our policy), so every decision here is
// unit-tested without a store, a kernel or root.
//
// A lease becomes a peer only if it could be one on a sane network: its
// subnet lies inside the Network with the configured length and overlaps
// neither ours nor another peer's; its PublicIP is a unicast address outside
// the Network and not ours (an address inside the Network is routed into the
// overlay itself and would loop); a vxlan lease carries our VNI and a unicast
// VtepMAC. flannel installs whatever a lease says; a writer to the store then
// owns the overlay, and one misconfigured node (a wrong --iface) can make
// every other node loop packets. Refusing costs nothing and stops both.
import { type Cidr4, cidrContains, formatCidr4, formatIp4, maskOf, parseCidr4 } from '../cidr';
import type { BackendType } from '../config/netconf';
import type { Lease, LeaseEvent, WatchBatch } from '../store/types';
import { subnetKey } from '../subnet/key';
import { isUnicastMac } from '../vtep';

export interface PeerPolicy {
  network: Cidr4;
  /** flannel's SubnetLen; undefined where the node's podCIDR decides (the kube subnet manager). */
  subnetLen?: number;
  ownSubnet: Cidr4;
  /** Our public IP and our interface address. */
  ownAddresses: readonly number[];
  backend: BackendType;
  /** vxlan: our VNI. */
  vni?: number;
}

/** Why a lease is not a peer, or null when it is one. `expected` marks another backend's lease (not a fault). */
export type Refusal = { reason: string; expected: boolean } | null;

export interface PeerDelta {
  upserts: Lease[];
  removed: Cidr4[];
}

export interface Reconciled {
  delta: PeerDelta;
  /** Leases refused in this batch, each with the key and why. */
  refused: Array<{ key: string; reason: string; expected: boolean }>;
  /** What happened to our own lease: removed (and how), or missing from a snapshot. */
  own: null | { kind: 'removed'; cause: 'deleted' | 'expired' } | { kind: 'missing' };
}

// Not unicast as a destination: "this network", loopback, multicast, reserved and broadcast.
const NOT_UNICAST = ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'].map(parseCidr4);

/** The admission rules above, for one lease on its own (overlap with other peers is reconcile's). */
export function refusalOf(lease: Lease, p: PeerPolicy): Refusal {
  const s = formatCidr4(lease.subnet);
  const type = lease.backend.type === 'other' ? lease.backend.name : lease.backend.type;
  if (lease.backend.type !== p.backend) {
    // flannel's own lines for a lease of another backend.
    if (p.backend === 'vxlan') return { reason: `ignoring non-vxlan v4Subnet(${s}) v6Subnet(<nil>): type=${type}`, expected: true };
    if (p.backend === 'host-gw') return { reason: `Ignoring non-host-gw subnet: type=${type}`, expected: true };
    return { reason: `ignoring non-udp subnet ${s}: type=${type}`, expected: true };
  }
  const net = formatCidr4(p.network);
  if (lease.subnet.prefixLen < p.network.prefixLen || !cidrContains(p.network, lease.subnet.ip)) {
    return { reason: `subnet ${s} is outside the Network ${net}`, expected: false };
  }
  if (p.subnetLen !== undefined && lease.subnet.prefixLen !== p.subnetLen) {
    return { reason: `subnet ${s} is not a /${p.subnetLen} (the Network's SubnetLen)`, expected: false };
  }
  if (overlaps(lease.subnet, p.ownSubnet)) return { reason: `subnet ${s} overlaps this node's subnet ${formatCidr4(p.ownSubnet)}`, expected: false };
  const ip = formatIp4(lease.publicIp);
  if (NOT_UNICAST.some((c) => cidrContains(c, lease.publicIp))) return { reason: `PublicIP ${ip} is not a unicast address`, expected: false };
  if (cidrContains(p.network, lease.publicIp)) {
    return { reason: `PublicIP ${ip} lies inside the Network ${net}: traffic to it would loop through the overlay`, expected: false };
  }
  if (p.ownAddresses.includes(lease.publicIp)) return { reason: `PublicIP ${ip} is this node's own address`, expected: false };
  if (lease.backend.type === 'vxlan') {
    if (lease.backend.vni !== p.vni) return { reason: `VNI ${lease.backend.vni} is not ours (${p.vni})`, expected: false };
    if (!isUnicastMac(lease.backend.vtepMac)) return { reason: `VtepMAC ${lease.backend.vtepMac} is not a unicast MAC`, expected: false };
  }
  return null;
}

export function overlaps(a: Cidr4, b: Cidr4): boolean {
  const mask = maskOf(Math.min(a.prefixLen, b.prefixLen));
  return ((a.ip & mask) >>> 0) === ((b.ip & mask) >>> 0);
}

/** Same forwarding: a renewal (only the expiration moved) changes nothing. */
export function samePeer(a: Lease | undefined, b: Lease): boolean {
  if (!a || a.publicIp !== b.publicIp || a.backend.type !== b.backend.type) return false;
  if (a.backend.type === 'vxlan' && b.backend.type === 'vxlan') return a.backend.vni === b.backend.vni && a.backend.vtepMac === b.backend.vtepMac;
  return true;
}

/**
 * Lookups over the current peers plus the changes of the batch being
 * reconciled, without copying the current set: a batch costs in proportion
 * to its size, not to the number of peers.
 */
class PeerView {
  private readonly changed = new Map<string, Lease | null>(); // key -> new lease, or null = removed
  private readonly lengths = new Set<number>();

  /**
   * With a SubnetLen every peer has that length (admission checked it), so
   * nothing needs reading; without one (kube mode) the lengths in use are
   * read from the set, once per batch.
   */
  constructor(
    private readonly current: ReadonlyMap<string, Lease>,
    subnetLen: number | undefined,
  ) {
    if (subnetLen !== undefined) {
      this.lengths.add(subnetLen);
      return;
    }
    for (const l of current.values()) {
      this.lengths.add(l.subnet.prefixLen);
      if (this.lengths.size > 4) break; // see overlapping()
    }
  }

  get(key: string): Lease | undefined {
    const c = this.changed.get(key);
    return c === undefined ? this.current.get(key) : (c ?? undefined);
  }

  set(key: string, lease: Lease | null): void {
    this.changed.set(key, lease);
    if (lease) this.lengths.add(lease.subnet.prefixLen);
  }

  /** Another peer's subnet that overlaps this one, if any. */
  overlapping(subnet: Cidr4, ownKey: string): Lease | undefined {
    if (this.lengths.size <= 4) {
      // Every overlapping subnet of length L is the one containing (or
      // contained in) ours at that length: one lookup per length in use.
      for (const len of this.lengths) {
        if (len > subnet.prefixLen) {
          for (const l of this.all()) if (l.subnet.prefixLen === len && overlaps(l.subnet, subnet) && subnetKey(l.subnet) !== ownKey) return l;
          continue;
        }
        const key = subnetKey({ ip: (subnet.ip & maskOf(len)) >>> 0, prefixLen: len });
        const l = key === ownKey ? undefined : this.get(key);
        if (l) return l;
      }
      return undefined;
    }
    for (const l of this.all()) if (overlaps(l.subnet, subnet) && subnetKey(l.subnet) !== ownKey) return l;
    return undefined;
  }

  private *all(): Iterable<Lease> {
    for (const [k, l] of this.current) if (!this.changed.has(k)) yield l;
    for (const l of this.changed.values()) if (l) yield l;
  }
}

/**
 * What one watch batch changes in the peer set. A snapshot is diffed
 * against the current set (so it too yields only the difference); events
 * are applied in order. The caller applies the delta to its set
 * (applyDelta) and to the forwarding state.
 */
export function reconcile(current: ReadonlyMap<string, Lease>, batch: WatchBatch, policy: PeerPolicy): Reconciled {
  const ownKey = subnetKey(policy.ownSubnet);
  const refused: Reconciled['refused'] = [];
  let own: Reconciled['own'] = null;

  if (batch.kind === 'snapshot') {
    const next = new Map<string, Lease>();
    const view = new PeerView(new Map(), policy.subnetLen);
    let ownSeen = false;
    for (const lease of batch.leases) {
      const key = subnetKey(lease.subnet);
      if (key === ownKey) {
        ownSeen = true;
        continue;
      }
      const why = admit(lease, key, policy, view);
      if (why) {
        refused.push({ key, ...why });
        continue;
      }
      next.set(key, lease);
      view.set(key, lease);
    }
    if (!ownSeen) own = { kind: 'missing' };
    const delta: PeerDelta = { upserts: [], removed: [] };
    for (const [k, l] of next) if (!samePeer(current.get(k), l)) delta.upserts.push(l);
    for (const [k, l] of current) if (!next.has(k)) delta.removed.push(l.subnet);
    return { delta, refused, own };
  }

  const view = new PeerView(current, policy.subnetLen);
  const events = batch.events;
  for (const ev of events) {
    const subnet = ev.type === 'removed' ? ev.subnet : ev.lease.subnet;
    const key = subnetKey(subnet);
    if (key === ownKey) {
      // Our own renewals come back as puts; a removal concerns us, unless a
      // put later in the batch (our renewal re-creating a lapsed lease) undid it.
      own = ev.type === 'removed' ? { kind: 'removed', cause: ev.cause } : null;
      continue;
    }
    if (ev.type === 'removed') {
      if (view.get(key)) view.set(key, null);
      continue;
    }
    const why = admit(ev.lease, key, policy, view);
    if (why) {
      refused.push({ key, ...why });
      // A peer whose lease changed into something we cannot use is gone for us.
      if (view.get(key)) view.set(key, null);
      continue;
    }
    view.set(key, ev.lease);
  }
  return { delta: deltaOf(current, view, events), refused, own };
}

function admit(lease: Lease, key: string, policy: PeerPolicy, view: PeerView): { reason: string; expected: boolean } | null {
  const r = refusalOf(lease, policy);
  if (r) return r;
  const other = view.overlapping(lease.subnet, key);
  if (other) return { reason: `subnet ${formatCidr4(lease.subnet)} overlaps peer ${formatCidr4(other.subnet)}`, expected: false };
  return null;
}

function deltaOf(current: ReadonlyMap<string, Lease>, view: PeerView, events: LeaseEvent[]): PeerDelta {
  const delta: PeerDelta = { upserts: [], removed: [] };
  const seen = new Set<string>();
  for (const ev of events) {
    const subnet = ev.type === 'removed' ? ev.subnet : ev.lease.subnet;
    const key = subnetKey(subnet);
    if (seen.has(key)) continue;
    seen.add(key);
    const before = current.get(key);
    const after = view.get(key);
    if (after && !samePeer(before, after)) delta.upserts.push(after);
    else if (!after && before) delta.removed.push(before.subnet);
  }
  return delta;
}

/** Applies a reconciled delta to the peer set (the caller's own map). */
export function applyDelta(peers: Map<string, Lease>, delta: PeerDelta): void {
  for (const s of delta.removed) peers.delete(subnetKey(s));
  for (const l of delta.upserts) peers.set(subnetKey(l.subnet), l);
}
