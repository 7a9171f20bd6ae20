// Segmentation of TUN super-packets and coalescing of received segments,
// checked against packets and checksums computed here, independently.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { addon } from '../../src/native';
import { checksum, icmpEcho, ipv4, l4ChecksumResidue, TCP, tcp4, udp4 } from '../../lab/packets';

const { segment, coalesce, completeChecksum, checksum: coreChecksum, GSO_TCPV4, GSO_UDP_L4 } = addon.offload;
const TS_OPTS = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps

function tcpPayload(p: Buffer): Buffer {
  const ihl = (p[0] & 0xf) * 4;
  return p.subarray(ihl + (p[ihl + 12] >> 4) * 4, p.readUInt16BE(2));
}
function tcpSeq(p: Buffer): number {
  return p.readUInt32BE((p[0] & 0xf) * 4 + 4);
}
function tcpFlags(p: Buffer): number {
  return p[(p[0] & 0xf) * 4 + 13];
}

describe('segmentation of a TSO super-packet', () => {
  const payload = randomBytes(10_001); // odd: the last segment is short and odd
  const mss = 1448;
  const big = tcp4({ seq: 0xfffff000, flags: TCP.ACK | TCP.PSH | TCP.FIN | TCP.CWR, options: TS_OPTS, payload, id: 0xfffe });

  it('cuts it into MSS-sized packets with correct headers and checksums', () => {
    const r = segment(big, { gsoType: GSO_TCPV4, gsoSize: mss });
    assert.equal(r.verdict, 'tx_packets');
    assert.equal(r.segments.length, Math.ceil(payload.length / mss));
    r.segments.forEach((s, i) => {
      const last = i === r.segments.length - 1;
      assert.equal(s.readUInt16BE(2), s.length, 'IP total length');
      assert.equal(checksum(s.subarray(0, 20)), 0, `IP checksum of segment ${i}`);
      assert.equal(l4ChecksumResidue(s), 0, `TCP checksum of segment ${i}`);
      assert.equal(s.readUInt16BE(4), (0xfffe + i) & 0xffff, 'IP id counts up (and wraps)');
      assert.equal(tcpSeq(s), (0xfffff000 + i * mss) >>> 0, 'sequence number (wraps)');
      assert.equal(tcpPayload(s).length, last ? payload.length - i * mss : mss);
      const f = tcpFlags(s);
      assert.equal(!!(f & TCP.FIN), last, 'FIN only on the last');
      assert.equal(!!(f & TCP.PSH), last, 'PSH only on the last');
      assert.equal(!!(f & TCP.CWR), i === 0, 'CWR only on the first');
      assert.deepEqual(s.subarray(40, 52), Buffer.from(TS_OPTS), 'options copied');
    });
    assert.deepEqual(Buffer.concat(r.segments.map(tcpPayload)), payload);
  });

  it('keeps IP options and leaves lead bytes free for the encapsulation', () => {
    const withIpOpts = tcp4({ seq: 1, payload: randomBytes(3000), ipOptions: Uint8Array.from([1, 1, 1, 0]) });
    const r = segment(withIpOpts, { gsoType: GSO_TCPV4, gsoSize: 1000 }, 22);
    assert.equal(r.segments.length, 3);
    assert.equal(r.stride, 22 + 24 + 20 + 1000);
    for (const s of r.segments) {
      assert.equal(s[0], 0x46);
      assert.equal(checksum(s.subarray(0, 24)), 0);
      assert.equal(l4ChecksumResidue(s), 0);
    }
  });

  it('ignores whatever the super-packet carries in its checksum field (the kernel leaves it partial)', () => {
    const p = tcp4({ seq: 5, payload: randomBytes(2000) });
    p.writeUInt16BE(0x1234, 36);
    for (const s of segment(p, { gsoType: GSO_TCPV4, gsoSize: 700 }).segments) assert.equal(l4ChecksumResidue(s), 0);
  });

  it('segments UDP (USO) with a length and checksum per datagram', () => {
    const p = udp4({ payload: randomBytes(4001) });
    const r = segment(p, { gsoType: GSO_UDP_L4, gsoSize: 1200 });
    assert.equal(r.segments.length, 4);
    for (const s of r.segments) {
      assert.equal(s.readUInt16BE(24), s.length - 20, 'UDP length');
      assert.equal(l4ChecksumResidue(s), 0);
    }
  });

  it('refuses what it cannot segment', () => {
    const p = tcp4({ seq: 1, payload: randomBytes(100) });
    assert.equal(segment(p, { gsoType: GSO_TCPV4, gsoSize: 0 }).verdict, 'tx_drop_bad_gso');
    assert.equal(segment(p.subarray(0, 30), { gsoType: GSO_TCPV4, gsoSize: 50 }).verdict, 'tx_drop_bad_gso');
    assert.equal(segment(p, { gsoType: GSO_UDP_L4, gsoSize: 50 }).verdict, 'tx_drop_bad_gso', 'protocol mismatch');
    assert.equal(segment(tcp4({ seq: 1, payload: new Uint8Array(0) }), { gsoType: GSO_TCPV4, gsoSize: 50 }).verdict, 'tx_drop_bad_gso');
    const badDoff = tcp4({ seq: 1, payload: randomBytes(20) }); // 60-byte TCP header claimed, 40 there
    badDoff[32] = 0xf0;
    assert.equal(segment(badDoff, { gsoType: GSO_TCPV4, gsoSize: 50 }).verdict, 'tx_drop_bad_gso');
    for (let i = 0; i < 3000; i++) {
      const junk = randomBytes(i % 300);
      if (junk.length > 0) junk[0] = 0x45;
      assert.equal(segment(junk, { gsoType: GSO_TCPV4, gsoSize: 1 + (i % 100) }).verdict, 'tx_drop_bad_gso');
    }
  });

  it('cuts the same packets when it writes only header blocks and leaves payloads in place (zero copy)', () => {
    const cases: Array<[Buffer, number, number]> = [
      [big, GSO_TCPV4, mss],
      [tcp4({ seq: 3, payload: randomBytes(4097), ipOptions: Uint8Array.from([1, 1, 1, 0]) }), GSO_TCPV4, 999],
      [udp4({ payload: randomBytes(3001) }), GSO_UDP_L4, 1000],
      [tcp4({ seq: 3, payload: randomBytes(48 * 64 + 1) }), GSO_TCPV4, 48], // the smallest MSS, 65 segments
    ];
    for (const [pkt, gsoType, gsoSize] of cases) {
      const copied = segment(pkt, { gsoType, gsoSize }, 22);
      const blocks = segment(pkt, { gsoType, gsoSize }, 22, true);
      assert.equal(blocks.verdict, 'tx_packets');
      assert.deepEqual(blocks.segments, copied.segments, 'byte for byte the same datagrams');
      const hdr = (pkt[0] & 0xf) * 4 + (gsoType === GSO_TCPV4 ? (pkt[(pkt[0] & 0xf) * 4 + 12] >> 4) * 4 : 8);
      assert.equal(blocks.stride, 22 + hdr, 'a block holds the lead and the headers only');
    }
    assert.equal(segment(big, { gsoType: GSO_TCPV4, gsoSize: 0 }, 22, true).verdict, 'tx_drop_bad_gso');
  });

  it('completes a partial checksum and refuses offsets past the end', () => {
    const p = tcp4({ seq: 9, payload: randomBytes(333) });
    // What the kernel hands over with NEEDS_CSUM: the pseudo-header sum, not inverted.
    let sum = 0;
    for (let i = 12; i < 20; i += 2) sum += p.readUInt16BE(i);
    sum += 6 + (p.length - 20);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    p.writeUInt16BE(sum, 36);
    assert.notEqual(l4ChecksumResidue(p), 0);
    assert.equal(l4ChecksumResidue(completeChecksum(p, 20, 16)!), 0);
    assert.equal(completeChecksum(p, p.length - 1, 16), null);
    assert.equal(completeChecksum(p, 20, p.length), null);
  });
});

describe('coalescing received TCP segments', () => {
  const mss = 1000;
  const flow = (n: number, o: { sport?: number; seq0?: number; last?: number; psh?: boolean } = {}) => {
    const pkts: Buffer[] = [];
    let seq = o.seq0 ?? 7;
    for (let i = 0; i < n; i++) {
      const len = i === n - 1 && o.last ? o.last : mss;
      pkts.push(tcp4({ sport: o.sport, seq, options: TS_OPTS, payload: randomBytes(len), flags: i === n - 1 && o.psh ? TCP.ACK | TCP.PSH : TCP.ACK, id: i }));
      seq += len;
    }
    return pkts;
  };

  it('merges in-order segments of a flow into one TSO packet the kernel can finish', () => {
    const segs = flow(5, { last: 321, psh: true });
    const out = coalesce(segs);
    assert.equal(out.length, 1);
    const [w] = out;
    assert.equal(w.segments, 5);
    assert.deepEqual(w.vnet, { flags: 1, gsoType: GSO_TCPV4, hdrLen: 52, gsoSize: mss, csumStart: 20, csumOffset: 16 });
    assert.equal(w.packet.readUInt16BE(2), w.packet.length);
    assert.equal(checksum(w.packet.subarray(0, 20)), 0);
    assert.deepEqual(tcpPayload(w.packet), Buffer.concat(segs.map(tcpPayload)));
    assert.equal(tcpSeq(w.packet), 7);
    assert.ok(tcpFlags(w.packet) & TCP.PSH, 'PSH of the last segment kept');
    assert.equal(l4ChecksumResidue(completeChecksum(w.packet, 20, 16)!), 0, 'partial checksum completes to a valid one');
    assert.equal(w.bytes, segs.reduce((n, s) => n + s.length, 0));
    // And segmenting it again gives back the original segments' payloads.
    const again = segment(completeChecksum(w.packet, 20, 16)!, { gsoType: GSO_TCPV4, gsoSize: w.vnet.gsoSize });
    assert.deepEqual(again.segments.map(tcpPayload), segs.map(tcpPayload));
  });

  it('passes out-of-order segments through unchanged and in arrival order', () => {
    const [a, b, c] = flow(3);
    const out = coalesce([a, c, b]);
    assert.deepEqual(out.map((w) => w.packet), [a, c, b]);
    for (const w of out) assert.equal(w.vnet.gsoType, 0);
  });

  it('keeps interleaved flows apart', () => {
    const A = flow(3, { sport: 1000 });
    const B = flow(2, { sport: 2000, seq0: 99 });
    const out = coalesce([A[0], B[0], A[1], B[1], A[2]]);
    assert.equal(out.length, 2);
    const byPort = new Map(out.map((w) => [w.packet.readUInt16BE(20), w]));
    assert.deepEqual(tcpPayload(byPort.get(1000)!.packet), Buffer.concat(A.map(tcpPayload)));
    assert.deepEqual(tcpPayload(byPort.get(2000)!.packet), Buffer.concat(B.map(tcpPayload)));
  });

  it('writes a flow out before a packet of it that cannot join (pure ACK, SYN), and passes non-TCP through', () => {
    const [a0, a1, a2] = flow(3);
    const ack = tcp4({ seq: 0, payload: new Uint8Array(0), options: TS_OPTS });
    const ping = ipv4({ src: '10.244.1.2', dst: '10.244.2.2', payload: icmpEcho(8, 1, 1) });
    const udp = udp4({ payload: randomBytes(100) });
    const out = coalesce([a0, a1, ping, ack, a2, udp]);
    assert.deepEqual(
      out.map((w) => w.segments),
      [1, 2, 1, 1, 1],
    );
    assert.deepEqual(out[0].packet, ping);
    assert.deepEqual(tcpPayload(out[1].packet), Buffer.concat([a0, a1].map(tcpPayload)));
    assert.deepEqual(out[2].packet, ack);
    assert.deepEqual(out.slice(3).map((w) => w.packet).sort(Buffer.compare), [a2, udp].sort(Buffer.compare));
  });

  it('ends a flow at a short segment, and does not merge different options or a full 64 KiB', () => {
    const segs = flow(3, { last: mss });
    const short = tcp4({ seq: 7 + mss, options: TS_OPTS, payload: randomBytes(10) });
    const next = tcp4({ seq: 7 + mss + 10, options: TS_OPTS, payload: randomBytes(mss) });
    assert.deepEqual(coalesce([segs[0], short, next]).map((w) => w.segments), [2, 1]);

    const otherTs = tcp4({ seq: 7 + mss, options: Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2]), payload: randomBytes(mss) });
    assert.deepEqual(coalesce([segs[0], otherTs]).map((w) => w.segments), [1, 1]);

    const many = flow(70);
    const out = coalesce(many);
    assert.ok(out.every((w) => w.packet.length <= 65535 && w.segments <= 64));
    assert.equal(out.reduce((n, w) => n + w.segments, 0), 70);
    assert.deepEqual(Buffer.concat(out.map((w) => tcpPayload(w.packet))), Buffer.concat(many.map(tcpPayload)));
  });
});

describe('checksums of received segments', () => {
  const mss = 1000;
  // A kernel peer's offload leaves the field holding the folded pseudo-header sum.
  const partial = (p: Buffer): Buffer => {
    const ihl = (p[0] & 0xf) * 4;
    const field = ihl + (p[9] === 6 ? 16 : 6);
    let sum = 0;
    for (let i = 12; i < 20; i += 2) sum += p.readUInt16BE(i);
    sum += p[9] + (p.length - ihl);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const q = Buffer.from(p);
    q.writeUInt16BE(sum, field);
    return q;
  };
  const corrupt = (p: Buffer): Buffer => {
    const q = Buffer.from(p);
    q[q.length - 7] ^= 0x10; // a payload bit flipped on the underlay
    return q;
  };
  const run = (n: number, seq0 = 1) => Array.from({ length: n }, (_, i) => tcp4({ seq: seq0 + i * mss, options: TS_OPTS, payload: randomBytes(mss), id: i }));

  it('never merges a segment whose checksum is wrong: it passes through for the kernel to drop', () => {
    const segs = run(5);
    const bad = corrupt(segs[2]);
    const out = coalesce([segs[0], segs[1], bad, segs[3], segs[4]]);
    assert.deepEqual(out.map((w) => w.segments), [2, 1, 2]);
    assert.deepEqual(out[1].packet, bad);
    assert.deepEqual(out[1].vnet, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
    assert.notEqual(l4ChecksumResidue(out[1].packet), 0, 'still wrong: the kernel will see it');
    for (const w of [out[0], out[2]]) assert.equal(l4ChecksumResidue(completeChecksum(w.packet, 20, 16)!), 0);
    assert.deepEqual(tcpPayload(out[0].packet), Buffer.concat([segs[0], segs[1]].map(tcpPayload)));
  });

  it('merges partial segments, and hands a lone partial packet over with NEEDS_CSUM', () => {
    const segs = run(3).map(partial);
    for (const s of segs) assert.notEqual(l4ChecksumResidue(s), 0);
    const out = coalesce(segs);
    assert.equal(out.length, 1);
    assert.equal(out[0].segments, 3);
    assert.equal(l4ChecksumResidue(completeChecksum(out[0].packet, 20, 16)!), 0);

    const u = partial(udp4({ payload: randomBytes(301) }));
    const [w] = coalesce([u]);
    assert.deepEqual(w.vnet, { flags: 1, gsoType: 0, hdrLen: 28, gsoSize: 0, csumStart: 20, csumOffset: 6 });
    assert.deepEqual(w.packet, u);
    assert.equal(l4ChecksumResidue(completeChecksum(w.packet, 20, 6)!), 0, 'what the kernel completes verifies');
    const ack = partial(tcp4({ seq: 5, payload: new Uint8Array(0) }));
    assert.deepEqual(coalesce([ack])[0].vnet, { flags: 1, gsoType: 0, hdrLen: 38, gsoSize: 0, csumStart: 20, csumOffset: 16 });
    // A right checksum needs nothing from the kernel but the usual check.
    assert.equal(coalesce([udp4({ payload: randomBytes(50) })])[0].vnet.flags, 0);
  });

  it('writes a TCP super-packet from a kernel peer as TSO cut to the MTU, only when its checksum holds', () => {
    const payload = randomBytes(9000);
    const big = tcp4({ seq: 77, flags: TCP.ACK | TCP.PSH, options: TS_OPTS, payload });
    for (const sent of [big, partial(big)]) {
      const out = coalesce([sent], 1450);
      assert.equal(out.length, 1);
      const [w] = out;
      assert.deepEqual(w.vnet, { flags: 1, gsoType: GSO_TCPV4, hdrLen: 52, gsoSize: 1450 - 52, csumStart: 20, csumOffset: 16 });
      assert.equal(w.segments, 1, 'one packet arrived');
      const done = completeChecksum(w.packet, 20, 16)!;
      assert.equal(l4ChecksumResidue(done), 0);
      const pieces = segment(done, { gsoType: GSO_TCPV4, gsoSize: w.vnet.gsoSize });
      assert.ok(pieces.segments.every((p) => p.length <= 1450));
      assert.deepEqual(Buffer.concat(pieces.segments.map(tcpPayload)), payload);
    }
    assert.deepEqual(coalesce([corrupt(big)], 1450), [], 'a corrupted super-packet is not written (the engine drops it)');
  });
});

describe('the Internet checksum', () => {
  it('agrees with an independent sum for every implementation, length and alignment', () => {
    const impls = ['auto', 'portable', 'avx2'] as const;
    const data = randomBytes(70_000);
    data.fill(0xff, 0, 4096); // all-ones words: the carries the folding must get right
    for (const impl of impls) {
      if (coreChecksum(new Uint8Array(1), impl) === null) continue; // no AVX2 on this CPU
      for (let len = 0; len < 300; len++) {
        for (const at of [0, 1, 3]) {
          const b = data.subarray(at, at + len);
          assert.equal(coreChecksum(b, impl), checksum(b), `${impl}, ${len} bytes at +${at}`);
        }
      }
      for (const len of [1399, 1448, 8192, 65535, 69_999]) {
        const b = data.subarray(1, 1 + len);
        assert.equal(coreChecksum(b, impl), checksum(b), `${impl}, ${len} bytes`);
      }
    }
    assert.match(addon.offload.checksumImpl, /^(portable|avx2)$/);
  });
});
