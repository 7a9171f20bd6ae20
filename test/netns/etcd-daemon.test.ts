// weft on etcd beside flannel: its lease is written in flannel's bytes, a
// lease written by hand in flannel's format becomes a peer and goes away on
// TTL expiry or deletion, a reservation is never taken, a restart reuses
// the subnet. Then a mixed cluster: node2 runs the kernel's vxlan set up as
// flannel sets up flannel.1, its lease written as flannel writes it.
//
//   etcd 192.168.77.100 --br0-- node1 (weft) / node2 (kernel flannel.1, or nothing)
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { formatCidr4, parseCidr4 } from '../../src/cidr';
import type { DaemonProcess } from '../../lab/daemon-process';
import { etcdctlDel, etcdctlGet, etcdctlLeaseGrant, etcdctlPut } from '../../lab/etcd';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { addKernelVxlanPeer, setupKernelVxlan } from '../../lab/kernel-vxlan';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping, tcpTransfer } from '../../lab/overlay';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wed');
after(() => deleteNamespaces(PREFIX));

const KERNEL_MAC = '0e:42:00:00:00:02';
const key = (subnet: string) => `${ETCD_PREFIX}/subnets/${subnet.replace('/', '-')}`;
const flannelValue = (ip: string, mac?: string) =>
  mac
    ? `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`
    : `{"PublicIP":"${ip}","PublicIPv6":null}`;

describe('weft on etcd, next to flannel', () => {
  it("writes flannel's bytes, follows hand-written leases, honours reservations, reuses its subnet", async () => {
    const el = await EtcdLab.create(`${PREFIX}a`, 1);
    let d: DaemonProcess | undefined;
    try {
      // Room for two subnets only; the first is reserved for someone else.
      await el.putConfig({ Network: '10.244.0.0/16', SubnetMin: '10.244.1.0', SubnetMax: '10.244.2.0', Backend: { Type: 'vxlan' } });
      await etcdctlPut(el.endpoint, key('10.244.1.0/24'), flannelValue('192.168.77.99', '0e:00:00:00:00:99'), el.ctl);
      const [n1] = el.lab.nodes;
      d = el.daemon(n1);
      const s = await d.waitReady();
      assert.equal(s.subnet, '10.244.2.0/24', 'the reservation is not taken');

      const got = await etcdctlGet(el.endpoint, key(s.subnet), el.ctl);
      assert.ok(got);
      assert.equal(got.value.toString(), flannelValue(n1.underlayIp, s.vtepMac!), "flannel's exact bytes");
      assert.notEqual(got.lease, '0', 'held by an etcd lease');
      const reservation = await etcdctlGet(el.endpoint, key('10.244.1.0/24'), el.ctl);
      assert.equal(reservation!.lease, '0', 'the reservation is still a key without a lease');

      // The reservation is a vxlan lease too: it is a peer.
      assert.deepEqual(s.peers, [{ subnet: '10.244.1.0/24', publicIp: '192.168.77.99', vtepMac: '0e:00:00:00:00:99', via: 'engine' }]);

      // A flannel node's lease (outside SubnetMin..Max does not matter to peers) with a 5 s TTL.
      const lease = await etcdctlLeaseGrant(el.endpoint, 5, el.ctl);
      await etcdctlPut(el.endpoint, key('10.244.7.0/24'), flannelValue('192.168.77.7', '0e:00:00:00:00:07'), { ...el.ctl, lease });
      await until('hand-written lease becomes a peer', 3000, async () => (await d!.status()).peers.some((p) => p.subnet === '10.244.7.0/24'));
      // A udp lease is another backend: ignored.
      await etcdctlPut(el.endpoint, key('10.244.8.0/24'), flannelValue('192.168.77.8'), el.ctl);
      // A malformed value is skipped with a warning naming the key.
      await etcdctlPut(el.endpoint, key('10.244.9.0/24'), '{"PublicIP":', el.ctl);
      const t0 = Date.now();
      await until('TTL expiry removes the peer', 12_000, async () => !(await d!.status()).peers.some((p) => p.subnet === '10.244.7.0/24'));
      const waited = Date.now() - t0;
      assert.ok(waited > 1000, 'it was there until the TTL ran out');
      assert.deepEqual((await d.status()).peers.map((p) => p.subnet), ['10.244.1.0/24'], 'udp and malformed leases are not peers');
      assert.match(d.logs(), /10\.244\.9\.0-24/, 'the malformed key is named in a warning');

      // Deletion removes a peer too.
      await etcdctlDel(el.endpoint, key('10.244.1.0/24'), el.ctl);
      await until('deleted lease leaves', 5000, async () => (await d!.status()).peers.length === 0);

      // Restart: same subnet, same VtepMAC, same lease key.
      assert.equal(await d.stop(), 0);
      d = el.daemon(n1);
      const s2 = await d.waitReady();
      assert.equal(s2.subnet, s.subnet);
      assert.equal(s2.vtepMac, s.vtepMac);
    } finally {
      await d?.stop();
      await el.destroy();
    }
  });

  it('carries traffic both ways with a node running the kernel vxlan as flannel does', async () => {
    const el = await EtcdLab.create(`${PREFIX}m`, 2);
    let d: DaemonProcess | undefined;
    try {
      await el.putConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
      const [n1, n2] = el.lab.nodes;
      // node2 is a flannel node: its lease as flanneld writes it, its flannel.1 as flanneld makes it.
      const kernelSubnet = '10.244.50.0/24';
      const grant = await etcdctlLeaseGrant(el.endpoint, 600, el.ctl);
      await etcdctlPut(el.endpoint, key(kernelSubnet), flannelValue(n2.underlayIp, KERNEL_MAC), { ...el.ctl, lease: grant });
      el.lab.wirePod(n2, kernelSubnet, 1450);
      setupKernelVxlan(n2, KERNEL_MAC);

      d = el.daemon(n1);
      const s = await d.waitReady();
      el.lab.wirePod(n1, s.subnet, d.subnetEnv().mtu!);
      assert.deepEqual(s.peers, [{ subnet: kernelSubnet, publicIp: n2.underlayIp, vtepMac: KERNEL_MAC, via: 'engine' }]);
      // What flanneld on node2 does when it sees weft's lease.
      const mine = JSON.parse((await etcdctlGet(el.endpoint, key(s.subnet), el.ctl))!.value.toString());
      addKernelVxlanPeer(n2, { subnet: formatCidr4(parseCidr4(s.subnet)), publicIp: mine.PublicIP, vtepMac: mine.BackendData.VtepMAC });

      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, 'weft pod -> flannel pod');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3, 'flannel pod -> weft pod');
      for (const [from, to, ip] of [[n1.pod, n2.pod, n2.podIp], [n2.pod, n1.pod, n1.podIp]] as const) {
        const t = await tcpTransfer(from, to, ip, 8 * 1024 * 1024);
        assert.equal(t.receivedSha256, t.sentSha256);
      }
    } finally {
      await d?.stop();
      await el.destroy();
    }
  });
});
