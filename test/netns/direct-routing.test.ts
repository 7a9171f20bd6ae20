// vxlan with DirectRouting: a peer on our L2 segment gets a plain route
// (no encapsulation at all); a peer behind a router stays on the engine.
//
//   etcd .100        router .254 / 192.168.78.254
//      |               |     |
//   ===br0 (192.168.77.0/24)===        ===br1 (192.168.78.0/24)===
//      |          |                          |
//   node1 .1   node2 .2                   node3 192.168.78.3
//
//   node1 <-> node2: `10.244.X.0/24 via 192.168.77.2`, no datagram on 8472 between them
//   node1/2 <-> node3: the engine, through the router
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';

import type { DaemonProcess } from '../../lab/daemon-process';
import { ETCD_IP, EtcdLab } from '../../lab/etcd-cluster';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping, tcpTransfer } from '../../lab/overlay';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wdr');
after(() => deleteNamespaces(PREFIX));

/** Counts UDP datagrams to or from port 8472 between two addresses on a node's eth0 while it runs. */
function capture(ns: EtcdLab['lab']['nodes'][number]['ns'], a: string, b: string): { stop: () => Promise<number> } {
  const p: ChildProcess = ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-l', '-q', `udp port 8472 and host ${a} and host ${b}`]);
  let lines = 0;
  let ready = false;
  p.stdout!.on('data', (d: Buffer) => (lines += d.toString().split('\n').filter((l) => l.includes('UDP')).length));
  p.stderr!.on('data', (d: Buffer) => (ready ||= d.toString().includes('listening')));
  return {
    stop: async () => {
      await until('tcpdump listening', 5000, async () => ready);
      await new Promise((r) => setTimeout(r, 300));
      p.kill('SIGINT');
      await new Promise((r) => p.once('exit', r));
      return lines;
    },
  };
}

describe('vxlan DirectRouting', () => {
  it('peers on our segment are routed directly, the one behind a router is tunnelled; every pair carries TCP byte-exact', async () => {
    const el = await EtcdLab.create(`${PREFIX}a`, 3);
    const daemons: DaemonProcess[] = [];
    try {
      const { lab } = el;
      const [n1, n2, n3] = lab.nodes;
      // A second segment behind a router; node3 moves onto it.
      const router = lab.addHost('rtr', '192.168.77.254');
      router.sysctl('net/ipv4/ip_forward', '1');
      lab.underlay.ip('link', 'add', 'br1', 'type', 'bridge');
      lab.underlay.ip('link', 'set', 'br1', 'up');
      router.ip('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'r1', 'netns', lab.underlay.name);
      lab.underlay.ip('link', 'set', 'r1', 'master', 'br1', 'up');
      router.ip('addr', 'add', '192.168.78.254/24', 'dev', 'eth1');
      router.ip('link', 'set', 'eth1', 'up');
      lab.underlay.ip('link', 'set', 'n3', 'nomaster');
      lab.underlay.ip('link', 'set', 'n3', 'master', 'br1');
      n3.ns.ip('addr', 'flush', 'dev', 'eth0');
      n3.ns.ip('addr', 'add', '192.168.78.3/24', 'dev', 'eth0');
      n3.ns.ip('route', 'add', 'default', 'via', '192.168.78.254');
      n3.underlayIp = '192.168.78.3';
      for (const n of [n1, n2]) n.ns.ip('route', 'add', '192.168.78.0/24', 'via', '192.168.77.254');
      el.etcdHost.ip('route', 'add', '192.168.78.0/24', 'via', '192.168.77.254');
      assert.equal(ping(n3.ns, ETCD_IP, 1).received, 1, 'node3 reaches etcd through the router');

      await el.putConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } });
      for (const node of lab.nodes) daemons.push(el.daemon(node, ['--ip-masq']));
      const status = await Promise.all(daemons.map((d) => d.waitReady()));
      for (const d of daemons) lab.wirePodCni(d.opts.node, d.subnetFile);
      await until('every node knows the other two', 10_000, async () => (await Promise.all(daemons.map((d) => d.status()))).every((s) => s.peers.length === 2));

      const s1 = await daemons[0].status();
      const via = (s: typeof s1, subnet: string) => s.peers.find((p) => p.subnet === subnet)?.via;
      assert.equal(via(s1, status[1].subnet), 'route', 'node2 is on our segment: a route');
      assert.equal(via(s1, status[2].subnet), 'engine', 'node3 is behind a router: the engine');
      assert.match(n1.ns.ip('route', 'show', status[1].subnet), new RegExp(`^${status[1].subnet.replace(/\./g, '\\.')} via 192\\.168\\.77\\.2 dev eth0`));
      assert.equal(via(await daemons[2].status(), status[0].subnet), 'engine');

      const cap = capture(n1.ns, n1.underlayIp, n2.underlayIp);
      for (const a of lab.nodes) {
        for (const b of lab.nodes) if (a !== b) assert.equal(ping(a.pod, b.podIp, 2).received, 2, `pod${a.index} -> pod${b.index}`);
      }
      for (const [a, b] of [[n1, n2], [n2, n1], [n1, n3], [n3, n2]] as const) {
        const t = await tcpTransfer(a.pod, b.pod, b.podIp, 4 * 1024 * 1024);
        assert.equal(t.receivedSha256, t.sentSha256, `TCP pod${a.index} -> pod${b.index}`);
      }
      assert.equal(await cap.stop(), 0, 'no vxlan datagram between node1 and node2');
      const c1 = (await daemons[0].status()).counters!;
      assert.ok(c1.tx_packets.packets > 100, 'node1 <-> node3 went through the engine');

      // The underlay changes under a running node: node1 now reaches node2 through the
      // router. The path changes over to the engine with no restart, and back.
      n1.ns.ip('route', 'add', '192.168.77.2/32', 'via', '192.168.77.254');
      await until('node1 moves node2 to the engine', 15_000, async () => via(await daemons[0].status(), status[1].subnet) === 'engine');
      assert.doesNotMatch(n1.ns.ip('route', 'show', status[1].subnet), /via 192\.168\.77\.2/);
      assert.equal(ping(n1.pod, n2.podIp, 2).received, 2, 'pod1 -> pod2 through the engine');
      n1.ns.ip('route', 'del', '192.168.77.2/32');
      await until('and back to a direct route', 15_000, async () => via(await daemons[0].status(), status[1].subnet) === 'route');
      assert.equal(ping(n1.pod, n2.podIp, 2).received, 2, 'pod1 -> pod2 directly again');
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });
});
