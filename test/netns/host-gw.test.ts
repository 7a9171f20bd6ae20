// The host-gw backend (flannel's pkg/backend/hostgw): no device, no
// encapsulation, a kernel route per peer through the peer's address.
//
//   etcd 192.168.77.100
//      |
//   ===br0=== node1 .1 / node2 .2 / node3 .3     each: weft host-gw, cni0 + pod (real CNI plugins)
//
// Then a weft node beside a "flannel" node whose lease and routes were
// written by hand exactly as flanneld's host-gw writes them.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import type { DaemonProcess } from '../../lab/daemon-process';
import { etcdctl, etcdctlDel, etcdctlGet, etcdctlLeaseGrant, etcdctlPut } from '../../lab/etcd';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping, tcpTransfer } from '../../lab/overlay';
import { until } from '../../lab/wait';
import { type LabNode } from '../../lab/topology';

const PREFIX = runPrefix('whg');
after(() => deleteNamespaces(PREFIX));

const NET = '10.244.0.0/16';
const key = (subnet: string) => `${ETCD_PREFIX}/subnets/${subnet.replace('/', '-')}`;

/** The routes inside the Network, as `ip route` prints them, sorted. */
function networkRoutes(n: LabNode): string[] {
  return n.ns
    .ip('-4', 'route', 'show', 'root', NET)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim())
    .sort();
}

describe('host-gw', () => {
  it("three nodes: flannel's exact routes, every pod pair, a deleted route back within 10 s, a deleted lease's route gone within 5 s", async () => {
    const el = await EtcdLab.create(`${PREFIX}a`, 3);
    const daemons: DaemonProcess[] = [];
    try {
      await el.putConfig({ Network: NET, Backend: { Type: 'host-gw' } });
      for (const node of el.lab.nodes) daemons.push(el.daemon(node, ['--ip-masq']));
      const status = await Promise.all(daemons.map((d) => d.waitReady()));
      for (const [i, d] of daemons.entries()) {
        const env = d.subnetEnv();
        assert.equal(env.mtu, 1500, 'MTU = the interface MTU');
        assert.equal(status[i].tun, null, 'no device');
        assert.doesNotMatch(d.opts.node.ns.ip('link', 'show'), /flannel/);
        const lease = await etcdctlGet(el.endpoint, key(status[i].subnet), el.ctl);
        assert.equal(lease?.value.toString(), `{"PublicIP":"${d.opts.node.underlayIp}","PublicIPv6":null,"BackendType":"host-gw"}`, "flannel's host-gw lease");
        el.lab.wirePodCni(d.opts.node, d.subnetFile);
      }
      await until('every node routes to the other two', 10_000, async () => (await Promise.all(daemons.map((d) => d.status()))).every((s) => s.peers.length === 2));
      for (const [i, d] of daemons.entries()) {
        const node = d.opts.node;
        const want = [
          `${status[i].subnet} dev cni0 proto kernel scope link src ${node.gatewayIp}`,
          ...status.filter((_, j) => j !== i).map((s, k) => `${s.subnet} via ${el.lab.nodes.filter((_, j) => j !== i)[k].underlayIp} dev eth0`),
        ].sort();
        assert.deepEqual(networkRoutes(node), want, `node${node.index}'s routes`);
      }
      for (const a of el.lab.nodes) {
        for (const b of el.lab.nodes) if (a !== b) assert.equal(ping(a.pod, b.podIp, 2).received, 2, `pod${a.index} -> pod${b.index}`);
      }
      const [n1, n2, n3] = el.lab.nodes;
      const t = await tcpTransfer(n1.pod, n2.pod, n2.podIp, 8 * 1024 * 1024);
      assert.equal(t.receivedSha256, t.sentSha256, 'TCP byte-exact');

      // Someone deletes a route: flannel's route check puts it back within 10 s.
      n1.ns.ip('route', 'del', status[1].subnet);
      const t0 = Date.now();
      await until('the route comes back', 11_000, async () => networkRoutes(n1).some((r) => r.startsWith(`${status[1].subnet} via ${n2.underlayIp}`)));
      const took = Date.now() - t0;
      assert.match(daemons[0].logs(), new RegExp(`Route recovered ${status[1].subnet.replace(/\./g, '\\.')} : ${n2.underlayIp.replace(/\./g, '\\.')}`));
      process.stderr.write(`# route recovered after ${took} ms\n`);

      // An operator deletes node3's lease: node3 stops (flannel's rule) and the others drop its route within 5 s.
      assert.equal(await etcdctlDel(el.endpoint, key(status[2].subnet), el.ctl), 1);
      for (const d of daemons.slice(0, 2)) {
        await until(`${d.opts.node.ns.name} drops ${status[2].subnet}`, 5000, async () => !networkRoutes(d.opts.node).some((r) => r.startsWith(status[2].subnet)));
      }
      assert.equal(await daemons[2].exited, 0);
      assert.equal(ping(n1.pod, n3.podIp, 1).received, 0);
      assert.equal(ping(n1.pod, n2.podIp, 2).received, 2, 'the rest still forward');
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });

  it('a weft host-gw node beside a node routed by hand exactly as flannel routes it: traffic both ways', async () => {
    const el = await EtcdLab.create(`${PREFIX}m`, 2);
    let d: DaemonProcess | undefined;
    try {
      await el.putConfig({ Network: NET, Backend: { Type: 'host-gw' } });
      const [n1, n2] = el.lab.nodes;
      // node2 is a flanneld host-gw node: its lease as flanneld writes it, its pod on cni0.
      const theirs = '10.244.60.0/24';
      const grant = await etcdctlLeaseGrant(el.endpoint, 600, el.ctl);
      await etcdctlPut(el.endpoint, key(theirs), `{"PublicIP":"${n2.underlayIp}","PublicIPv6":null,"BackendType":"host-gw"}`, { ...el.ctl, lease: grant });
      el.lab.wirePod(n2, theirs, 1500);

      d = el.daemon(n1, ['--ip-masq']);
      const s = await d.waitReady();
      el.lab.wirePodCni(n1, d.subnetFile);
      assert.deepEqual(s.peers, [{ subnet: theirs, publicIp: n2.underlayIp, via: 'route' }]);
      // What flanneld's host-gw on node2 does for weft's lease: ip route add <subnet> via <PublicIP> dev eth0.
      n2.ns.ip('route', 'add', s.subnet, 'via', n1.underlayIp, 'dev', 'eth0');

      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, 'weft pod -> flannel pod');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3, 'flannel pod -> weft pod');
      for (const [from, to, ip] of [[n1.pod, n2.pod, n2.podIp], [n2.pod, n1.pod, n1.podIp]] as const) {
        const t = await tcpTransfer(from, to, ip, 4 * 1024 * 1024);
        assert.equal(t.receivedSha256, t.sentSha256);
      }
    } finally {
      await d?.stop();
      await el.destroy();
    }
  });

  it("refuses a public IP other than the interface's, with flannel's words", async () => {
    const el = await EtcdLab.create(`${PREFIX}n`, 1);
    try {
      await el.putConfig({ Network: NET, Backend: { Type: 'host-gw' } });
      const d = el.daemon(el.lab.nodes[0], ['--public-ip', '192.168.77.200']);
      assert.equal(await d.exited, 1);
      assert.match(d.logs(), /your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend/);
      const keys = await etcdctl(el.endpoint, ['get', '--prefix', '--keys-only', `${ETCD_PREFIX}/subnets/`], el.ctl);
      assert.equal(keys.trim(), '', 'no lease taken');
    } finally {
      await el.destroy();
    }
  });
});
