// Encap/decap of both wire formats through the native core, and every drop
// reason decap has, fed by hand-made frames.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { addon } from '../../src/native';
import { COUNTER_NAMES, FIB_WORDS } from '../../src/native/engine-types';
import { checksum, icmpEcho, ipv4, macBytes, TCP, tcp4, vxlanFrame } from '../../lab/packets';

const { encap, decap } = addon.encap;
const OURS = '02:aa:bb:cc:dd:01';
const PEER = '02:aa:bb:cc:dd:02';
const inner = ipv4({ src: '10.244.1.2', dst: '10.244.2.2', payload: icmpEcho(8, 7, 1) });
const rx = { vni: 1, vtepMac: OURS, maxInner: 1450 };

describe('vxlan encap', () => {
  it('prepends VXLAN (I flag, VNI) and Ethernet (peer MAC, our MAC, IPv4) and leaves the packet as it was', () => {
    const r = encap('vxlan', inner, { vni: 0xabcdef, vtepMac: OURS }, PEER);
    assert.equal(r.verdict, 'tx_packets');
    const p = r.payload!;
    assert.equal(p.length, 22 + inner.length);
    assert.deepEqual([...p.subarray(0, 8)], [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    assert.deepEqual(p.subarray(8, 14), macBytes(PEER));
    assert.deepEqual(p.subarray(14, 20), macBytes(OURS));
    assert.equal(p.readUInt16BE(20), 0x0800);
    assert.deepEqual(p.subarray(22), inner);
  });

  it('round-trips through decap at the peer', () => {
    const p = encap('vxlan', inner, { vni: 1, vtepMac: PEER }, OURS).payload!;
    const r = decap('vxlan', p, rx);
    assert.deepEqual(r, { verdict: 'rx_packets', innerOffset: 22, innerLength: inner.length, superPacket: false });
  });

  it('refuses what is not a well-formed IPv4 packet from the TUN', () => {
    assert.equal(encap('vxlan', Buffer.from([0x60, 0, 0, 0]), { vtepMac: OURS }, PEER).verdict, 'tx_drop_not_ipv4');
    const short = Buffer.from(inner);
    short.writeUInt16BE(inner.length + 1, 2);
    assert.equal(encap('vxlan', short, { vtepMac: OURS }, PEER).verdict, 'tx_drop_bad_ipv4');
  });
});

describe('udp encap (flannel proxy format)', () => {
  it('sends the bare inner packet with TTL one lower and a checksum that still verifies', () => {
    const withOpts = ipv4({ src: '10.244.1.2', dst: '10.244.2.2', ttl: 64, options: Uint8Array.from([1, 1, 1, 0]) });
    for (const pkt of [inner, withOpts]) {
      const r = encap('udp', pkt, {});
      assert.equal(r.verdict, 'tx_packets');
      const p = r.payload!;
      assert.equal(p.length, pkt.length);
      assert.equal(p[8], pkt[8] - 1);
      const ihl = (p[0] & 0xf) * 4;
      assert.equal(checksum(p.subarray(0, ihl)), 0, 'header checksum verifies');
      // Independent: recompute the checksum from scratch and compare.
      const h = Buffer.from(p.subarray(0, ihl));
      h.writeUInt16BE(0, 10);
      assert.equal(p.readUInt16BE(10), checksum(h));
      assert.deepEqual(p.subarray(ihl), pkt.subarray(ihl));
    }
  });

  it('keeps the checksum right across every TTL and carry', () => {
    for (let ttl = 2; ttl < 256; ttl++) {
      for (const id of [0, 0xfeff, 0xffff]) {
        const p = encap('udp', ipv4({ src: '255.255.255.255', dst: '10.244.2.2', ttl, id }), {}).payload!;
        assert.equal(checksum(p.subarray(0, 20)), 0, `ttl ${ttl} id ${id}`);
      }
    }
  });

  it('drops a packet whose TTL would reach 0', () => {
    assert.equal(encap('udp', ipv4({ src: '10.244.1.2', dst: '10.244.2.2', ttl: 1 }), {}).verdict, 'tx_drop_ttl');
    assert.equal(encap('udp', ipv4({ src: '10.244.1.2', dst: '10.244.2.2', ttl: 0 }), {}).verdict, 'tx_drop_ttl');
  });

  it('decap accepts the bare packet and cuts trailing bytes past its total length', () => {
    const padded = Buffer.concat([inner, Buffer.alloc(6)]);
    assert.deepEqual(decap('udp', padded, { maxInner: 1472 }), { verdict: 'rx_packets', innerOffset: 0, innerLength: inner.length, superPacket: false });
  });
});

describe('decap drops bad input and names the reason', () => {
  const frame = (o: Partial<Parameters<typeof vxlanFrame>[0]> = {}) =>
    vxlanFrame({ vni: 1, dstMac: OURS, srcMac: PEER, inner, ...o });
  const withIp = (mutate: (b: Buffer) => void) => {
    const b = Buffer.from(inner);
    mutate(b);
    return frame({ inner: b });
  };
  const cases: Array<[string, Buffer, string]> = [
    ['empty datagram', Buffer.alloc(0), 'rx_drop_truncated'],
    ['shorter than VXLAN + Ethernet', frame().subarray(0, 21), 'rx_drop_truncated'],
    ['IPv4 header cut short', frame().subarray(0, 22 + 12), 'rx_drop_truncated'],
    ['IPv4 packet cut short', frame().subarray(0, frame().length - 3), 'rx_drop_bad_length'],
    ['inner packet larger than the TUN MTU', frame({ inner: ipv4({ src: '10.244.1.2', dst: '10.244.2.2', payload: new Uint8Array(1500) }) }), 'rx_drop_oversized'],
    ['I flag clear', frame({ flags: 0x00 }), 'rx_drop_bad_vxlan_flags'],
    ['reserved flag bit set', frame({ flags: 0x0c }), 'rx_drop_bad_vxlan_flags'],
    ['reserved byte after VNI set', (() => { const f = frame(); f[7] = 1; return f; })(), 'rx_drop_bad_vxlan_flags'],
    ['wrong VNI', frame({ vni: 2 }), 'rx_drop_wrong_vni'],
    ['inner destination MAC not ours', frame({ dstMac: PEER }), 'rx_drop_wrong_mac'],
    ['broadcast inner MAC', frame({ dstMac: 'ff:ff:ff:ff:ff:ff' }), 'rx_drop_wrong_mac'],
    ['ARP ethertype', frame({ ethertype: 0x0806 }), 'rx_drop_bad_ethertype'],
    ['IPv6 ethertype', frame({ ethertype: 0x86dd }), 'rx_drop_bad_ethertype'],
    ['IPv6 packet behind an IPv4 ethertype', withIp((b) => (b[0] = 0x60)), 'rx_drop_not_ipv4'],
    ['IHL below 5', withIp((b) => (b[0] = 0x44)), 'rx_drop_bad_ihl'],
    ['IHL past the end', withIp((b) => (b[0] = 0x4f)), 'rx_drop_bad_ihl'],
    ['total length past the end', withIp((b) => b.writeUInt16BE(inner.length + 10, 2)), 'rx_drop_bad_length'],
    ['total length below the header', withIp((b) => b.writeUInt16BE(12, 2)), 'rx_drop_bad_length'],
  ];
  for (const [what, bytes, reason] of cases) {
    it(`${what} -> ${reason}`, () => {
      assert.equal(decap('vxlan', bytes, rx).verdict, reason);
    });
  }

  it('udp format: non-IPv4, bad IHL, bad length and oversized', () => {
    assert.equal(decap('udp', Buffer.from([0x60, 0, 0, 0]), {}).verdict, 'rx_drop_not_ipv4');
    assert.equal(decap('udp', inner.subarray(0, 10), {}).verdict, 'rx_drop_truncated');
    const bad = Buffer.from(inner);
    bad[0] = 0x43;
    assert.equal(decap('udp', bad, {}).verdict, 'rx_drop_bad_ihl');
    assert.equal(decap('udp', inner, { maxInner: inner.length - 1 }).verdict, 'rx_drop_oversized');
  });

  it('takes a TCP super-packet larger than the TUN MTU whole (a kernel peer\'s GSO), and nothing else that large', () => {
    const big = tcp4({ seq: 1, flags: TCP.ACK, payload: randomBytes(5000) });
    assert.deepEqual(decap('vxlan', frame({ inner: big }), rx), { verdict: 'rx_packets', innerOffset: 22, innerLength: big.length, superPacket: true });
    const fragment = Buffer.from(big);
    fragment[6] = 0x20; // MF: a fragment is no segment (decap does not read the header checksum)
    assert.equal(decap('vxlan', frame({ inner: fragment }), rx).verdict, 'rx_drop_oversized');
    assert.equal(decap('vxlan', frame({ inner: tcp4({ seq: 1, payload: new Uint8Array(0) }) }), { ...rx, maxInner: 30 }).verdict, 'rx_drop_oversized', 'no payload');
    assert.equal(decap('udp', big, { maxInner: 40 }).verdict, 'rx_drop_oversized', 'headers do not fit the MTU');
  });

  it('never crashes on random bytes and always names a known verdict', () => {
    const names = new Set(addon.encap.counterNames);
    for (let i = 0; i < 20_000; i++) {
      const b = randomBytes(i % 97);
      if (i % 3 === 0 && b.length > 0) b[0] = 0x08; // get past the flags check more often
      for (const f of ['vxlan', 'udp'] as const) {
        const r = decap(f, b, rx);
        assert.ok(names.has(r.verdict), r.verdict);
        if (r.verdict === 'rx_packets') assert.ok(r.innerOffset + r.innerLength <= b.length);
      }
    }
  });
});

describe('counter names', () => {
  it('are the same in TypeScript as in the addon, in the same order', () => {
    assert.deepEqual([...COUNTER_NAMES], addon.encap.counterNames);
  });
});

describe('the peer table layout', () => {
  it('has as many words per peer in TypeScript as in the addon', () => {
    assert.equal(FIB_WORDS, addon.encap.fibWords);
  });
});
