// Which leases become peers and what a watch batch changes
// (src/daemon/peers.ts): pure functions, tested on plain values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type Cidr4, formatCidr4, parseCidr4, parseIp4 } from '../../src/cidr';
import { applyDelta, type PeerPolicy, reconcile, refusalOf } from '../../src/daemon/peers';
import type { Lease, LeaseBackend, WatchBatch } from '../../src/store/types';
import { subnetKey } from '../../src/subnet/key';

const C = parseCidr4;
const POLICY: PeerPolicy = {
  network: C('10.244.0.0/16'),
  subnetLen: 24,
  ownSubnet: C('10.244.1.0/24'),
  ownAddresses: [parseIp4('192.168.77.1')],
  backend: 'vxlan',
  vni: 1,
};

let macSeq = 0;
/** A lease; `backend` is a whole other backend, or vxlan fields to change. */
function lease(subnet: string, publicIp: string, backend: LeaseBackend | { vni?: number; vtepMac?: string } = {}): Lease {
  const b: LeaseBackend =
    'type' in backend ? backend : { type: 'vxlan', vni: 1, vtepMac: `02:00:00:00:00:${(++macSeq).toString(16).padStart(2, '0')}`, ...backend };
  return { subnet: C(subnet), publicIp: parseIp4(publicIp), backend: b, expiration: new Date(Date.now() + 86_400_000) };
}

function mapOf(...leases: Lease[]): Map<string, Lease> {
  return new Map(leases.map((l) => [subnetKey(l.subnet), l]));
}
const subnets = (xs: Array<Lease | Cidr4>) => xs.map((x) => formatCidr4('subnet' in x ? x.subnet : x)).sort();
const events = (...evs: Array<['+', Lease] | ['-', string, 'deleted' | 'expired']>): WatchBatch => ({
  kind: 'events',
  cursor: '1',
  events: evs.map((e) => (e[0] === '+' ? { type: 'added' as const, lease: e[1] } : { type: 'removed' as const, subnet: C(e[1]), cause: e[2] })),
});

describe('refusalOf: what may be a peer', () => {
  const cases: Array<[string, Lease, RegExp | null]> = [
    ['a good vxlan lease', lease('10.244.2.0/24', '192.168.77.2'), null],
    ['a catch-all subnet', lease('0.0.0.0/0', '192.168.77.66'), /outside the Network/],
    ['a subnet outside the Network', lease('10.245.2.0/24', '192.168.77.2'), /outside the Network 10\.244\.0\.0\/16/],
    ['a /32 hijack of one pod', lease('10.244.64.2/32', '192.168.77.66'), /is not a \/24/],
    ['a subnet covering ours', lease('10.244.0.0/23', '192.168.77.2'), /is not a \/24/],
    ['PublicIP loopback', lease('10.244.2.0/24', '127.0.0.1'), /PublicIP 127\.0\.0\.1 is not a unicast address/],
    ['PublicIP multicast', lease('10.244.2.0/24', '224.0.0.1'), /not a unicast address/],
    ['PublicIP broadcast', lease('10.244.2.0/24', '255.255.255.255'), /not a unicast address/],
    ['PublicIP zero', lease('10.244.2.0/24', '0.0.0.0'), /not a unicast address/],
    ['PublicIP inside the Network', lease('10.244.200.0/24', '10.244.200.1'), /lies inside the Network 10\.244\.0\.0\/16: traffic to it would loop/],
    ['PublicIP our own', lease('10.244.2.0/24', '192.168.77.1'), /this node's own address/],
    ['another VNI', lease('10.244.2.0/24', '192.168.77.2', { vni: 2 }), /VNI 2 is not ours \(1\)/],
    ['a broadcast VtepMAC', lease('10.244.2.0/24', '192.168.77.2', { vtepMac: 'ff:ff:ff:ff:ff:ff' }), /VtepMAC ff:ff:ff:ff:ff:ff is not a unicast MAC/],
    ['a multicast VtepMAC', lease('10.244.2.0/24', '192.168.77.2', { vtepMac: '01:00:5e:00:00:01' }), /not a unicast MAC/],
    ['a udp lease', lease('10.244.2.0/24', '192.168.77.2', { type: 'udp' }), /ignoring non-vxlan v4Subnet\(10\.244\.2\.0\/24\) v6Subnet\(<nil>\): type=udp/],
    ['a wireguard lease', lease('10.244.2.0/24', '192.168.77.2', { type: 'other', name: 'wireguard' }), /type=wireguard/],
  ];
  for (const [name, l, want] of cases) {
    it(`${want ? 'refuses' : 'takes'} ${name}`, () => {
      const r = refusalOf(l, POLICY);
      if (!want) assert.equal(r, null);
      else assert.match(r?.reason ?? 'accepted', want);
    });
  }
  it("marks another backend's lease as expected (flannel's warning), a hostile one as not", () => {
    assert.equal(refusalOf(lease('10.244.2.0/24', '192.168.77.2', { type: 'udp' }), POLICY)?.expected, true);
    assert.equal(refusalOf(lease('10.244.2.0/24', '127.0.0.1'), POLICY)?.expected, false);
  });
  it("host-gw and udp speak flannel's (and weft's) words for other backends", () => {
    assert.match(refusalOf(lease('10.244.2.0/24', '192.168.77.2'), { ...POLICY, backend: 'host-gw' })!.reason, /^Ignoring non-host-gw subnet: type=vxlan$/);
    assert.match(refusalOf(lease('10.244.2.0/24', '192.168.77.2', { type: 'host-gw' }), { ...POLICY, backend: 'udp' })!.reason, /ignoring non-udp subnet 10\.244\.2\.0\/24: type=host-gw/);
  });
  it('takes any length inside the Network when the podCIDR decides (kube mode: no SubnetLen)', () => {
    assert.equal(refusalOf(lease('10.244.8.0/22', '192.168.77.2'), { ...POLICY, subnetLen: undefined }), null);
  });
});

describe('reconcile: a snapshot', () => {
  it('yields the whole admitted set against an empty start, refusals named, our own lease skipped', () => {
    const good = lease('10.244.2.0/24', '192.168.77.2');
    const own = lease('10.244.1.0/24', '192.168.77.1');
    const hostile = lease('10.244.3.0/24', '127.0.0.1');
    const r = reconcile(new Map(), { kind: 'snapshot', leases: [good, own, hostile], cursor: '5' }, POLICY);
    assert.deepEqual(subnets(r.delta.upserts), ['10.244.2.0/24']);
    assert.deepEqual(r.delta.removed, []);
    assert.deepEqual(r.refused.map((x) => x.key), ['10.244.3.0-24']);
    assert.equal(r.own, null);
  });
  it('diffs against the current set: only what changed, a renewal is no change', () => {
    const a = lease('10.244.2.0/24', '192.168.77.2');
    const b = lease('10.244.3.0/24', '192.168.77.3');
    const c = lease('10.244.4.0/24', '192.168.77.4');
    const renewed = { ...a, expiration: new Date(Date.now() + 2 * 86_400_000) };
    const moved = { ...b, publicIp: parseIp4('192.168.77.33') };
    const r = reconcile(mapOf(a, b, c), { kind: 'snapshot', leases: [renewed, moved, lease('10.244.1.0/24', '192.168.77.1')], cursor: '9' }, POLICY);
    assert.deepEqual(subnets(r.delta.upserts), ['10.244.3.0/24']);
    assert.deepEqual(subnets(r.delta.removed), ['10.244.4.0/24']);
  });
  it('says when our own lease is missing (a store that lost its data)', () => {
    const r = reconcile(new Map(), { kind: 'snapshot', leases: [lease('10.244.2.0/24', '192.168.77.2')], cursor: '1' }, POLICY);
    assert.deepEqual(r.own, { kind: 'missing' });
  });
  it('refuses a lease overlapping a peer already admitted (kube mode: podCIDRs of any length)', () => {
    const kube = { ...POLICY, subnetLen: undefined };
    const wide = lease('10.244.8.0/22', '192.168.77.2');
    const inside = lease('10.244.9.0/24', '192.168.77.3');
    const r = reconcile(new Map(), { kind: 'snapshot', leases: [wide, inside], cursor: '1' }, kube);
    assert.deepEqual(subnets(r.delta.upserts), ['10.244.8.0/22']);
    assert.match(r.refused[0].reason, /10\.244\.9\.0\/24 overlaps peer 10\.244\.8\.0\/22/);
    const r2 = reconcile(mapOf(inside), { kind: 'snapshot', leases: [inside, wide], cursor: '1' }, kube);
    assert.match(r2.refused[0].reason, /10\.244\.8\.0\/22 overlaps peer 10\.244\.9\.0\/24/);
  });
});

describe('reconcile: events', () => {
  it('applies adds, changes and removes in order; a batch touching one key twice ends in its last state', () => {
    const a = lease('10.244.2.0/24', '192.168.77.2');
    const b = lease('10.244.3.0/24', '192.168.77.3');
    const cur = mapOf(a);
    const r = reconcile(cur, events(['+', b], ['-', '10.244.2.0/24', 'deleted'], ['+', { ...b, publicIp: parseIp4('192.168.77.30') }]), POLICY);
    assert.deepEqual(subnets(r.delta.upserts), ['10.244.3.0/24']);
    assert.equal(r.delta.upserts[0].publicIp, parseIp4('192.168.77.30'));
    assert.deepEqual(subnets(r.delta.removed), ['10.244.2.0/24']);
    applyDelta(cur, r.delta);
    assert.deepEqual([...cur.keys()], ['10.244.3.0-24']);
  });
  it('a renewal of a peer changes nothing', () => {
    const a = lease('10.244.2.0/24', '192.168.77.2');
    const r = reconcile(mapOf(a), events(['+', { ...a, expiration: new Date(Date.now() + 1e9) }]), POLICY);
    assert.deepEqual(r.delta, { upserts: [], removed: [] });
  });
  it('a peer whose lease turns hostile is removed, and the refusal named', () => {
    const a = lease('10.244.2.0/24', '192.168.77.2');
    const r = reconcile(mapOf(a), events(['+', { ...a, publicIp: parseIp4('10.244.2.1') }]), POLICY);
    assert.deepEqual(subnets(r.delta.removed), ['10.244.2.0/24']);
    assert.equal(r.refused[0].key, '10.244.2.0-24');
  });
  it('removing an unknown subnet changes nothing', () => {
    const r = reconcile(new Map(), events(['-', '10.244.9.0/24', 'deleted']), POLICY);
    assert.deepEqual(r.delta, { upserts: [], removed: [] });
  });
  it('reports our own lease removed, with the cause, and ignores our own renewals', () => {
    assert.deepEqual(reconcile(new Map(), events(['-', '10.244.1.0/24', 'expired']), POLICY).own, { kind: 'removed', cause: 'expired' });
    assert.deepEqual(reconcile(new Map(), events(['-', '10.244.1.0/24', 'deleted']), POLICY).own, { kind: 'removed', cause: 'deleted' });
    assert.equal(reconcile(new Map(), events(['+', lease('10.244.1.0/24', '192.168.77.1')]), POLICY).own, null);
    // A lapse our own renewal already undid, in the same batch, is no removal.
    assert.equal(reconcile(new Map(), events(['-', '10.244.1.0/24', 'expired'], ['+', lease('10.244.1.0/24', '192.168.77.1')]), POLICY).own, null);
  });
  it('reads the peer set only by key: a batch costs in proportion to its size, not to the peers', () => {
    // A set that counts every walk over it: reconciling one event may look
    // up keys, never iterate.
    class Counting extends Map<string, Lease> {
      walks = 0;
      override values() {
        this.walks++;
        return super.values();
      }
      override entries() {
        this.walks++;
        return super.entries();
      }
      override keys() {
        this.walks++;
        return super.keys();
      }
      override [Symbol.iterator]() {
        this.walks++;
        return super[Symbol.iterator]();
      }
    }
    const big = new Counting();
    for (let i = 0; i < 5_000; i++) {
      const l = lease(`10.${100 + (i >> 8)}.${i & 255}.0/24`, '192.168.77.2');
      big.set(subnetKey(l.subnet), l);
    }
    big.walks = 0;
    const wide = { ...POLICY, network: C('10.0.0.0/8') };
    const r = reconcile(big, events(['+', lease('10.99.1.0/24', '192.168.77.9')], ['-', '10.100.1.0/24', 'deleted']), wide);
    assert.equal(r.delta.upserts.length + r.delta.removed.length, 2);
    assert.equal(big.walks, 0, 'the 5,000 peers were never walked');
  });

});
