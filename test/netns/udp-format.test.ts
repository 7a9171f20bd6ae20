// weft's udp format checked against a plain UDP socket on the peer node:
// the datagram payload must be exactly the inner IPv4 packet (flannel's
// proxy format), and packets a peer sends that way reach the pod.
//
//   pod1 - cni0 - [node1: weft flannel0] - eth0 ==br0== eth0 - [node2: udp-peer.js on :8285]
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, describe, it } from 'node:test';

import { EngineProcess } from '../../lab/engine-process';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { engineArgs, peerOf, ping } from '../../lab/overlay';
import { Lab } from '../../lab/topology';
import { checksum, icmpEcho, ipv4 } from '../../lab/packets';

const PREFIX = runPrefix('wud');
after(() => deleteNamespaces(PREFIX));

const PEER_SCRIPT = path.resolve(__dirname, '..', '..', 'lab', 'udp-peer.js');

interface Datagram {
  from: string;
  port: number;
  bytes: Buffer;
}

describe('udp format against a plain UDP socket', () => {
  it('sends the bare inner packet, TTL decremented; delivers bare packets to the pod', async () => {
    const lab = Lab.create(PREFIX, 2, 1472);
    try {
      const [n1, n2] = lab.nodes;
      const peer = n2.ns.spawn(process.execPath, [PEER_SCRIPT, n2.underlayIp, '8285']);
      const got: Datagram[] = [];
      const bound = new Promise<void>((resolve) => {
        readline.createInterface({ input: peer.stdout! }).on('line', (l) => {
          const m = JSON.parse(l);
          if (m.bound) return resolve();
          got.push({ from: m.from, port: m.port, bytes: Buffer.from(m.hex, 'hex') });
        });
      });
      const weft = await EngineProcess.start(n1.ns, engineArgs('udp', n1, ''));
      try {
        await bound;
        await weft.setPeers([peerOf(n2)]);

        // pod1 -> pod2: one echo request, which nobody answers.
        assert.equal(ping(n1.pod, n2.podIp, 1).received, 0);
        for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(got.length, 1);
        const d = got[0];
        assert.equal(d.from, n1.underlayIp);
        assert.equal(d.port, 8285, 'sent from the bound port, as flannel does');
        const p = d.bytes;
        assert.equal(p[0], 0x45, 'IPv4, no options: nothing in front of the packet');
        assert.equal(p.readUInt16BE(2), p.length, 'total length is the whole payload');
        assert.equal(p[9], 1, 'ICMP');
        assert.equal([...p.subarray(12, 16)].join('.'), n1.podIp);
        assert.equal([...p.subarray(16, 20)].join('.'), n2.podIp);
        // The pod sent 64; node1's kernel forwarded it (63) into the TUN; weft decrements as a router.
        assert.equal(p[8], 62);
        assert.equal(checksum(p.subarray(0, 20)), 0, 'header checksum still verifies');
        assert.equal(p[20], 8, 'echo request');

        // The other way: the "peer" sends bare IPv4 packets; pod1 answers them.
        const before = (await weft.stats()).counters.rx_packets;
        const sent: Buffer[] = [];
        for (let seq = 1; seq <= 10; seq++) {
          const pkt = ipv4({ src: n2.podIp, dst: n1.podIp, ttl: 64, payload: icmpEcho(8, 0x4242, seq, Buffer.alloc(56, seq)) });
          sent.push(pkt);
          peer.stdin!.write(`${JSON.stringify({ send: pkt.toString('hex'), to: n1.underlayIp, port: 8285 })}\n`);
        }
        for (let i = 0; i < 100 && got.length < 11; i++) await new Promise((r) => setTimeout(r, 20));
        const replies = got.slice(1).map((g) => g.bytes);
        assert.equal(replies.length, 10, 'one reply per request');
        for (const r of replies) {
          assert.equal(r[9], 1);
          assert.equal(r[20], 0, 'echo reply');
          assert.equal(r.readUInt16BE(24), 0x4242);
          assert.equal([...r.subarray(16, 20)].join('.'), n2.podIp);
        }
        assert.deepEqual(replies.map((r) => r.readUInt16BE(26)).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        const after_ = (await weft.stats()).counters.rx_packets;
        assert.equal(after_.packets - before.packets, 10, 'rx counted each datagram once');
        assert.equal(after_.bytes - before.bytes, sent.reduce((n, b) => n + b.length, 0));

        // Through the real socket: a malformed datagram from the peer, and a
        // good one from an address that is not a peer, are dropped and counted.
        const c0 = (await weft.stats()).counters;
        const badIhl = Buffer.from(sent[0]);
        badIhl[0] = 0x44;
        peer.stdin!.write(`${JSON.stringify({ send: badIhl.toString('hex'), to: n1.underlayIp, port: 8285 })}\n`);
        n2.ns.ip('addr', 'add', '192.168.77.50/24', 'dev', 'eth0');
        const stranger = n2.ns.spawn(process.execPath, [PEER_SCRIPT, '192.168.77.50', '8285']);
        try {
          await new Promise<void>((resolve) => stranger.stdout!.once('data', () => resolve()));
          stranger.stdin!.write(`${JSON.stringify({ send: sent[1].toString('hex'), to: n1.underlayIp, port: 8285 })}\n`);
          // And a packet for a subnet no peer holds: nowhere to send it.
          assert.equal(ping(n1.pod, '10.244.99.2', 1).received, 0);
          let c1 = c0;
          for (let i = 0; i < 100; i++) {
            c1 = (await weft.stats()).counters;
            if (c1.rx_drop_unknown_peer.packets > c0.rx_drop_unknown_peer.packets && c1.rx_drop_bad_ihl.packets > c0.rx_drop_bad_ihl.packets) break;
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.equal(c1.rx_drop_bad_ihl.packets - c0.rx_drop_bad_ihl.packets, 1, 'bad IHL counted');
          assert.equal(c1.rx_drop_unknown_peer.packets - c0.rx_drop_unknown_peer.packets, 1, 'non-peer counted');
          assert.equal(c1.rx_drop_unknown_peer.bytes - c0.rx_drop_unknown_peer.bytes, sent[1].length);
          assert.equal(c1.tx_drop_no_route.packets - c0.tx_drop_no_route.packets, 1, 'no route counted');
          assert.equal(c1.rx_packets.packets, c0.rx_packets.packets, 'neither was delivered');

          // --allow-any-source (flannel's permissive behaviour, for NAT): the
          // stranger's packet is delivered, and pod1's answer goes to the peer.
          await weft.stop();
          const permissive = await EngineProcess.start(n1.ns, [...engineArgs('udp', n1, ''), '--allow-any-source']);
          try {
            await permissive.setPeers([peerOf(n2)]);
            const before2 = got.length;
            stranger.stdin!.write(`${JSON.stringify({ send: sent[2].toString('hex'), to: n1.underlayIp, port: 8285 })}\n`);
            for (let i = 0; i < 100 && got.length === before2; i++) await new Promise((r) => setTimeout(r, 20));
            const s = (await permissive.stats()).counters;
            assert.equal(s.rx_packets.packets, 1, 'delivered');
            assert.equal(s.rx_drop_unknown_peer.packets, 0);
            assert.equal(got.length, before2 + 1, 'answered');
            assert.equal(got[before2].bytes.readUInt16BE(26), 3, 'the answer to echo seq 3');
          } finally {
            await permissive.stop();
          }
        } finally {
          stranger.kill('SIGKILL');
        }
      } finally {
        peer.kill('SIGKILL');
        await weft.stop();
      }
    } finally {
      lab.destroy();
    }
  });
});
