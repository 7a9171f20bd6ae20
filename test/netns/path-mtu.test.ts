// Path MTU: one forged ICMP "fragmentation needed" must not stall bulk TCP
// between two weft nodes, whether it comes from a host on the underlay or
// from a pod through the overlay (REDTEAM F4), with offloads on and off;
// and an underlay MTU set above the link's still carries bulk TCP, sent one
// datagram at a time when the kernel refuses a UDP_SEGMENT run.
//
//   pod1 - cni0 - [node1: weft] - eth0 ==br0== eth0 - [node2: weft] - cni0 - pod2
//                  192.168.77.1      |          192.168.77.2
//                                    +-- atk 192.168.77.66 (sends the ICMP)
//
// The ICMP quotes the start of a full-size datagram node1 sends node2
// (UDP 8472 -> 8472, VXLAN) and announces a next-hop MTU of 1200. By
// default the kernel would lower node1's path MTU to node2 for ten minutes
// and refuse every UDP_SEGMENT send to it.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { iperf3 } from '../../lab/iperf';
import { deleteNamespaces, run, runPrefix } from '../../lab/netns';
import { ping, startWeft, tcpTransfer, type WeftNode } from '../../lab/overlay';
import { checksum, icmpFragNeeded, ipv4 } from '../../lab/packets';
import { sendRawIpv4 } from '../../lab/raw-ip';
import { Lab } from '../../lab/topology';

const PREFIX = runPrefix('wpm');
after(() => deleteNamespaces(PREFIX));

const ATTACKER = '192.168.77.66';
const SECONDS = 3;

/** The ICMP error a router would send node1 about a 1500-byte datagram to node2. */
function fragNeeded(from: string, to: string, node1: string, node2: string): Buffer {
  const udpAndVxlan = Buffer.alloc(8 + 8 + 34);
  udpAndVxlan.writeUInt16BE(8472, 0);
  udpAndVxlan.writeUInt16BE(8472, 2);
  udpAndVxlan.writeUInt16BE(1480, 4);
  udpAndVxlan[8] = 0x08; // VXLAN I flag
  udpAndVxlan[14] = 1; // VNI 1
  const quoted = ipv4({ src: node1, dst: node2, protocol: 17, payload: udpAndVxlan });
  quoted.writeUInt16BE(1500, 2); // it was a full-size datagram
  quoted.writeUInt16BE(0, 10);
  quoted.writeUInt16BE(checksum(quoted.subarray(0, 20)), 10);
  return ipv4({ src: from, dst: to, protocol: 1, payload: icmpFragNeeded(1200, quoted) });
}

for (const offload of [true, false]) {
  describe(`a forged ICMP "fragmentation needed", offloads ${offload ? 'on' : 'off'}`, () => {
    for (const source of ['underlay', 'pod'] as const) {
      it(`from ${source === 'underlay' ? 'a host on the underlay' : 'a pod through the overlay'}: bulk TCP keeps at least half its throughput`, async (t) => {
        const lab = Lab.create(`${PREFIX}${offload ? 'o' : 'n'}${source[0]}`, 2, 1450);
        let nodes: WeftNode[] = [];
        try {
          const attacker = lab.addHost('atk', ATTACKER);
          nodes = await startWeft(lab, 'vxlan', lab.nodes, offload ? [] : ['--no-offload']);
          const [a, b] = nodes;
          const [n1, n2] = lab.nodes;
          const before = await iperf3(n1.pod, n2.pod, n2.podIp, SECONDS);
          const s0 = await a.engine.stats();

          if (source === 'underlay') {
            sendRawIpv4(attacker, [fragNeeded(ATTACKER, n1.underlayIp, n1.underlayIp, n2.underlayIp)]);
          } else {
            // Root in pod2 (CAP_NET_RAW is in the default container capabilities),
            // addressed to node1's TUN address, which the inner check accepts.
            const tunIp = n1.subnet.replace(/\/\d+$/, '');
            sendRawIpv4(n2.pod, [fragNeeded(n2.podIp, tunIp, n1.underlayIp, n2.underlayIp)]);
          }
          await new Promise((r) => setTimeout(r, 200));
          // Without the sanitizer tier's preloaded ASan: it reports a strncpy in iproute2's own print_route.
          const route = run('env', ['-u', 'LD_PRELOAD', 'ip', '-n', n1.ns.name, 'route', 'get', n2.underlayIp]);
          const afterIcmp = await iperf3(n1.pod, n2.pod, n2.podIp, SECONDS);
          const s1 = await a.engine.stats();
          t.diagnostic(`before ${(before.bitsPerSecond / 1e6).toFixed(0)} Mbit/s, after ${(afterIcmp.bitsPerSecond / 1e6).toFixed(0)} Mbit/s; ${route.trim()}`);

          assert.doesNotMatch(route, /mtu 1200/, 'the socket took no path MTU from the ICMP');
          assert.ok(before.bitsPerSecond > 0);
          assert.ok(afterIcmp.bitsPerSecond >= before.bitsPerSecond / 2, `${afterIcmp.bitsPerSecond} < half of ${before.bitsPerSecond}`);
          assert.equal(s1.counters.tx_drop_send_error.packets - s0.counters.tx_drop_send_error.packets, 0, 'no send refused');
          assert.equal(ping(n1.pod, n2.podIp, 2, ['-M', 'do', '-s', String(1450 - 28)]).received, 2, 'full-size packets still cross');
          assert.equal((await b.engine.stats()).fatalError, null);
        } finally {
          await Promise.all(nodes.map((w) => w.engine.stop()));
          lab.destroy();
        }
      });
    }
  });
}

describe('an underlay MTU above the link MTU', () => {
  it('still carries 20 MB of TCP byte-exact: refused UDP_SEGMENT runs go one datagram at a time', async () => {
    // --mtu 3000 on 1500-byte links: 2950-byte inner packets, 3000-byte
    // datagrams. The kernel refuses a UDP_SEGMENT run of them (a segment
    // larger than the device's MTU) but fragments each one sent alone.
    const lab = Lab.create(`${PREFIX}j`, 2, 2950);
    let nodes: WeftNode[] = [];
    try {
      nodes = await startWeft(lab, 'vxlan', lab.nodes, ['--mtu', '3000']);
      const [a, b] = nodes;
      const [n1, n2] = lab.nodes;
      assert.equal(a.engine.ready.mtu, 2950);
      const r = await tcpTransfer(n1.pod, n2.pod, n2.podIp, 20 * 1024 * 1024);
      assert.equal(r.receivedBytes, r.bytes);
      assert.equal(r.receivedSha256, r.sentSha256);
      const s = (await a.engine.stats()).counters;
      assert.ok(s.tx_gso_fallback.packets > 1000, `tx_gso_fallback ${s.tx_gso_fallback.packets}`);
      assert.equal(s.tx_drop_send_error.packets, 0);
      assert.equal((await b.engine.stats()).counters.rx_drop_oversized.packets, 0);
    } finally {
      await Promise.all(nodes.map((w) => w.engine.stop()));
      lab.destroy();
    }
  });
});
