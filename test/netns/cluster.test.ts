// Three weft daemons on one etcd (on a host of its own), in each backend,
// with --ip-masq as kube-flannel runs them: pods wired by the real CNI
// plugins from subnet.env reach each other, a full-MTU packet crosses,
// a deleted lease leaves every peer table within 5 s, and a restarted
// daemon keeps its subnet while the others lose its path for under 2 s.
//
//   etcd 192.168.77.100 --br0-- node1 .1 / node2 .2 / node3 .3 (each: weft, cni0, pod)
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { parseCidr4 } from '../../src/cidr';
import { DaemonProcess } from '../../lab/daemon-process';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { etcdctlDel } from '../../lab/etcd';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping } from '../../lab/overlay';
import { subnetKey } from '../../src/subnet/key';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wcl');
after(() => deleteNamespaces(PREFIX));

for (const backend of ['vxlan', 'udp'] as const) {
  describe(`three daemons on etcd, ${backend}`, () => {
    it('connect every pod pair, survive a restart, and drop a deleted lease', async () => {
      const el = await EtcdLab.create(`${PREFIX}${backend[0]}`, 3);
      const daemons: DaemonProcess[] = [];
      try {
        await el.putConfig({ Network: '10.244.0.0/16', Backend: { Type: backend } });
        for (const node of el.lab.nodes) daemons.push(el.daemon(node, ['--ip-masq']));
        for (const d of daemons) await d.waitReady();
        const mtu = backend === 'udp' ? 1472 : 1450;
        for (const d of daemons) {
          const env = d.subnetEnv();
          assert.equal(env.mtu, mtu);
          assert.equal(env.ipMasq, true);
          el.lab.wirePodCni(d.opts.node, d.subnetFile);
        }
        const subnets = new Set(el.lab.nodes.map((n) => n.subnet));
        assert.equal(subnets.size, 3, 'three distinct subnets');
        await DaemonProcess.converged(daemons);

        const [n1, n2, n3] = el.lab.nodes;
        for (const a of el.lab.nodes) {
          for (const b of el.lab.nodes) {
            if (a !== b) assert.equal(ping(a.pod, b.podIp, 2).received, 2, `pod${a.index} -> pod${b.index}`);
          }
        }
        assert.equal(ping(n1.pod, n2.podIp, 2, ['-M', 'do', '-s', String(mtu - 28)]).received, 2, `a ${mtu}-byte DF packet crosses`);

        // Restart node1's daemon under a steady ping from pod2.
        const before = await daemons[0].status();
        const prober = n2.pod.spawn('ping', ['-n', '-i', '0.05', '-c', '120', '-W', '1', n1.podIp]);
        let out = '';
        prober.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        const probeDone = new Promise((r) => prober.once('exit', r));
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(await daemons[0].stop(), 0);
        daemons[0] = el.daemon(n1, ['--ip-masq']);
        const afterRestart = await daemons[0].waitReady();
        await probeDone;
        assert.equal(afterRestart.subnet, before.subnet, 'same subnet after restart');
        const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
        assert.ok(m, out);
        const lostSeconds = (Number(m[1]) - Number(m[2])) * 0.05;
        assert.ok(lostSeconds <= 2, `path lost for ${lostSeconds.toFixed(2)} s during the restart`);

        // Delete node3's lease, as an operator would: node3 shuts down
        // (flannel's behaviour) and the others forget it within 5 s.
        const s3 = await daemons[2].status();
        const key = `${ETCD_PREFIX}/subnets/${subnetKey(parseCidr4(s3.subnet))}`;
        assert.equal(await etcdctlDel(el.endpoint, key, el.ctl), 1);
        const t0 = Date.now();
        for (const d of [daemons[0], daemons[1]]) {
          await until(`${d.opts.node.ns.name} drops ${s3.subnet}`, 5000, async () => {
            const s = await d.status();
            return s.peers.some((p) => p.subnet === s3.subnet) ? undefined : true;
          });
        }
        assert.ok(Date.now() - t0 <= 5000);
        assert.equal(ping(n1.pod, n3.podIp, 1).received, 0, 'no path to a revoked subnet');
        assert.equal(await daemons[2].exited, 0, "the revoked daemon exits 0, as flanneld's does");
        assert.match(daemons[2].logs(), /Lease has been revoked. Shutting down daemon./);
        assert.doesNotMatch(n3.ns.ip('link', 'show'), /flannel/, 'and removes its TUN');
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
        await el.destroy();
      }
    });
  });
}

