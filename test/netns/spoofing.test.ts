// Spoofed overlay traffic (REDTEAM F5): a host on the underlay forges
// datagrams with node2's address as the outer source (and, for vxlan,
// node1's VtepMAC, which is published in its lease), carrying inner
// packets node1 must not take: to its host addresses, loopback (with
// route_localnet=1, as kube-proxy sets it), broadcast, or other hosts to
// relay them to. Each is dropped and counted as rx_drop_inner_dst, in both
// wire formats. With --strict-source, inner sources outside the sending
// peer's subnet are dropped too (rx_drop_inner_src). What no check on
// node1 can catch is shown as well: a forgery consistent in both headers
// (node2's address outside, a pod of node2's inside) is delivered.
//
//   pod1 - cni0 - [node1: weft] - eth0 ==br0== eth0 - [node2: weft] - cni0 - pod2
//   10.244.1.2     192.168.77.1    |               192.168.77.2           10.244.2.2
//                                  +-- atk 192.168.77.66 (forges; also listens)
//                                  +-- far 192.168.77.100 (listens for relays)
//   node1 also has a peer 10.244.3.0/24 at 192.168.77.3, with no node behind it.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, describe, it } from 'node:test';

import { EngineProcess } from '../../lab/engine-process';
import { deleteNamespaces, type Netns, runPrefix } from '../../lab/netns';
import { engineArgs, peerOf, ping, startWeft, type WeftNode } from '../../lab/overlay';
import { udp4, vxlanFrame } from '../../lab/packets';
import { sendRawIpv4 } from '../../lab/raw-ip';
import { Lab } from '../../lab/topology';
import { until } from '../../lab/wait';
import type { CounterName, NativeStats } from '../../src/native';

const PREFIX = runPrefix('wsp');
after(() => deleteNamespaces(PREFIX));

const PEER_SCRIPT = path.resolve(__dirname, '..', '..', 'lab', 'udp-peer.js');
const ATTACKER = '192.168.77.66';
const FAR_HOST = '192.168.77.100';
const FAKE_PEER = { subnet: '10.244.3.0/24', publicIp: '192.168.77.3', vtepMac: '02:00:00:00:00:03' };
const COPIES = 3;

type Fate = 'rx_packets' | 'rx_drop_inner_dst' | 'rx_drop_inner_src';
interface Row {
  name: string;
  src: string;
  dst: string;
  port: number;
  /** Without and with --strict-source. */
  fate: [Fate, Fate];
}

// A UDP listener on 0.0.0.0:port in ns, recording the text of what arrives.
async function listen(ns: Netns, port: number): Promise<{ got: string[]; stop: () => void }> {
  const child = ns.spawn(process.execPath, [PEER_SCRIPT, '0.0.0.0', String(port)]);
  const got: string[] = [];
  await new Promise<void>((resolve) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = JSON.parse(l);
      if (m.bound) return resolve();
      got.push(Buffer.from(m.hex, 'hex').toString());
    });
  });
  return { got, stop: () => child.kill('SIGKILL') };
}

for (const backend of ['vxlan', 'udp'] as const) {
  describe(`spoofed inner packets, ${backend}`, () => {
    it('drops and counts every row of the table; a pod-to-pod ping still works', async (t) => {
      const port = backend === 'vxlan' ? 8472 : 8285;
      const lab = Lab.create(`${PREFIX}${backend[0]}`, 2, backend === 'vxlan' ? 1450 : 1472);
      const listeners: Array<{ stop: () => void }> = [];
      try {
        const [n1, n2] = lab.nodes;
        const attacker = lab.addHost('atk', ATTACKER);
        const far = lab.addHost('far', FAR_HOST);
        // Nothing on node1 but weft may stop these: no reverse-path filter,
        // and loopback routable from outside, as kube-proxy leaves it.
        for (const conf of ['all', 'default']) n1.ns.sysctl(`net/ipv4/conf/${conf}/rp_filter`, '0');
        n1.ns.sysctl('net/ipv4/conf/all/route_localnet', '1');
        const broadcast = n1.subnet.replace(/\.0\/24$/, '.255');
        const rows: Row[] = [
          { name: 'to-node-ip', src: '1.2.3.4', dst: n1.underlayIp, port: 5555, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'to-loopback', src: n2.podIp, dst: '127.0.0.1', port: 5555, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'to-broadcast', src: n2.podIp, dst: '255.255.255.255', port: 5555, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'to-subnet-broadcast', src: n2.podIp, dst: broadcast, port: 5555, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'relay-to-attacker', src: '8.8.8.8', dst: ATTACKER, port: 5559, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'relay-to-far-host', src: n2.podIp, dst: FAR_HOST, port: 5559, fate: ['rx_drop_inner_dst', 'rx_drop_inner_dst'] },
          { name: 'other-peers-pod', src: '10.244.3.2', dst: n1.podIp, port: 5557, fate: ['rx_packets', 'rx_drop_inner_src'] },
          { name: 'outside-source', src: '1.2.3.4', dst: n1.podIp, port: 5557, fate: ['rx_packets', 'rx_drop_inner_src'] },
          // Not covered by any check: both headers say "node2, pod2".
          { name: 'consistent-forgery', src: n2.podIp, dst: n1.podIp, port: 5557, fate: ['rx_packets', 'rx_packets'] },
        ];

        for (const strict of [false, true]) {
          let nodes: WeftNode[] = [];
          try {
            nodes = await startWeft(lab, backend, lab.nodes, strict ? ['--strict-source'] : []);
            const [a, b] = nodes;
            await a.engine.setPeers([peerOf(n2, b.vtepMac), backend === 'vxlan' ? FAKE_PEER : { ...FAKE_PEER, vtepMac: undefined }]);
            const host = await listen(n1.ns, 5555);
            const pod = await listen(n1.pod, 5557);
            const atk = await listen(attacker, 5559);
            const farL = await listen(far, 5559);
            listeners.push(host, pod, atk, farL);
            const mode = strict ? 'strict' : 'default';

            const s0 = await a.engine.stats();
            const datagrams = rows.flatMap((r) => {
              const inner = udp4({ src: r.src, dst: r.dst, sport: 40000, dport: r.port, payload: Buffer.from(`${mode}:${r.name}`) });
              const payload = backend === 'vxlan' ? vxlanFrame({ vni: 1, dstMac: a.vtepMac, srcMac: b.vtepMac, inner }) : inner;
              const outer = udp4({ src: n2.underlayIp, dst: n1.underlayIp, sport: port, dport: port, payload });
              return Array.from({ length: COPIES }, () => outer);
            });
            sendRawIpv4(attacker, datagrams);

            const want = (fate: Fate) => rows.filter((r) => r.fate[strict ? 1 : 0] === fate).length * COPIES;
            const delta = (s: NativeStats, k: CounterName) => s.counters[k].packets - s0.counters[k].packets;
            const s1 = await until('every forged datagram counted', 5000, async () => {
              const s = await a.engine.stats();
              const n = delta(s, 'rx_packets') + delta(s, 'rx_drop_inner_dst') + delta(s, 'rx_drop_inner_src');
              return n >= rows.length * COPIES && s;
            });
            await new Promise((r) => setTimeout(r, 300)); // what was delivered reaches its socket
            t.diagnostic(`${mode}: ${(['rx_packets', 'rx_drop_inner_dst', 'rx_drop_inner_src'] as const).map((k) => `${k} +${delta(s1, k)}`).join(', ')}`);
            for (const fate of ['rx_packets', 'rx_drop_inner_dst', 'rx_drop_inner_src'] as const) {
              assert.equal(delta(s1, fate), want(fate), `${mode}: ${fate}`);
            }
            assert.equal(delta(s1, 'rx_drop_unknown_peer'), 0, 'the outer source passed as node2');

            // What arrived where: exactly the rows that were to be delivered.
            const arrived = [...host.got, ...pod.got, ...atk.got, ...farL.got].filter((x) => x.startsWith(`${mode}:`));
            const delivered = rows.filter((r) => r.fate[strict ? 1 : 0] === 'rx_packets');
            assert.deepEqual(
              [...new Set(arrived)].sort(),
              delivered.map((r) => `${mode}:${r.name}`).sort(),
              `${mode}: delivered rows`,
            );
            assert.equal(arrived.length, delivered.length * COPIES);
            assert.ok(pod.got.length >= COPIES, 'the consistent forgery reached pod1');

            assert.equal(ping(n2.pod, n1.podIp, 3).received, 3, `${mode}: pod2 -> pod1`);
            assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, `${mode}: pod1 -> pod2`);
          } finally {
            for (const l of listeners.splice(0)) l.stop();
            await Promise.all(nodes.map((w) => w.engine.stop()));
          }
        }
      } finally {
        for (const l of listeners) l.stop();
        lab.destroy();
      }
    });
  });
}

describe('strict source without the peer check', () => {
  it('is refused with one clear line', async () => {
    const lab = Lab.create(`${PREFIX}r`, 1, 1450);
    try {
      const node = lab.nodes[0];
      await assert.rejects(
        EngineProcess.start(node.ns, [...engineArgs('vxlan', node, FAKE_PEER.vtepMac), '--strict-source', '--allow-any-source']),
        (e: Error & { exitCode?: number; stderr?: string }) => {
          assert.equal(e.exitCode, 1);
          assert.equal(e.stderr!.trim().split('\n').length, 1, e.stderr);
          assert.match(e.stderr!, /^weft: --strict-source cannot be combined with --allow-any-source/);
          return true;
        },
      );
      assert.throws(() => node.ns.ip('link', 'show', 'flannel.1'), /does not exist/, 'nothing was made');
    } finally {
      lab.destroy();
    }
  });
});
