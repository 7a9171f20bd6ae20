// Two weft engines, one per lab node, in each wire format: pods ping both
// ways, a TCP transfer arrives byte-exact, and the engines' counters agree
// with each other. Topology: src/lab/topology.ts (two nodes, one pod each).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { iperf3 } from '../../lab/iperf';
import { ping, startWeft, tcpTransfer } from '../../lab/overlay';
import { Lab } from '../../lab/topology';
import type { NativeStats } from '../../src/native';

const PREFIX = runPrefix('wov');
after(() => deleteNamespaces(PREFIX));

const TRANSFER = 24 * 1024 * 1024;

function sumDrops(s: NativeStats): Record<string, number> {
  return Object.fromEntries(Object.entries(s.counters).filter(([k, v]) => k.includes('_drop_') && v.packets > 0).map(([k, v]) => [k, v.packets]));
}

for (const backend of ['vxlan', 'udp'] as const) {
  describe(`weft <-> weft, ${backend}`, () => {
    it('pods ping both ways, 24 MiB of TCP arrives byte-exact, and the counters agree', async () => {
      const lab = Lab.create(`${PREFIX}${backend[0]}`, 2, backend === 'udp' ? 1472 : 1450);
      try {
        const [a, b] = await startWeft(lab, backend);
        try {
          assert.equal(a.engine.ready.tun, backend === 'udp' ? 'flannel0' : 'flannel.1');
          assert.equal(a.engine.ready.mtu, backend === 'udp' ? 1472 : 1450);
          assert.equal(a.engine.ready.port, backend === 'udp' ? 8285 : 8472);

          const ab = ping(a.node.pod, b.node.podIp, 5);
          const ba = ping(b.node.pod, a.node.podIp, 5);
          assert.equal(ab.received, 5, 'pod1 -> pod2');
          assert.equal(ba.received, 5, 'pod2 -> pod1');
          // A full-size packet with DF crosses: pod MTU = TUN MTU.
          const full = (backend === 'udp' ? 1472 : 1450) - 28;
          assert.equal(ping(a.node.pod, b.node.podIp, 2, ['-M', 'do', '-s', String(full)]).received, 2, 'full-MTU DF ping');

          const t = await tcpTransfer(a.node.pod, b.node.pod, b.node.podIp, TRANSFER);
          assert.equal(t.bytes, TRANSFER);
          assert.equal(t.receivedBytes, TRANSFER);
          assert.equal(t.receivedSha256, t.sentSha256);

          const [sa, sb] = [await a.engine.stats(), await b.engine.stats()];
          assert.equal(sa.fatalError, null);
          assert.deepEqual(sumDrops(sa), {}, 'node1 dropped nothing');
          assert.deepEqual(sumDrops(sb), {}, 'node2 dropped nothing');
          // Nothing is lost on a veth: what one side encapsulated the other wrote to its TUN.
          assert.equal(sb.counters.rx_packets.packets, sa.counters.tx_packets.packets);
          assert.equal(sb.counters.rx_packets.bytes, sa.counters.tx_packets.bytes);
          assert.equal(sa.counters.rx_packets.packets, sb.counters.tx_packets.packets);
          assert.ok(sa.counters.tx_packets.bytes >= TRANSFER, 'the transfer went through the engine');
          assert.ok(sa.counters.tx_packets.packets >= 7 + TRANSFER / 1500);

        } finally {
          const [ea, eb] = await Promise.all([a.engine.stop(), b.engine.stop()]);
          assert.equal(ea.code, 0);
          assert.equal(eb.code, 0);
        }
        // The TUN and its route went with the engine.
        assert.throws(() => a.node.ns.ip('link', 'show', a.engine.ready.tun), /does not exist/);
        assert.doesNotMatch(a.node.ns.ip('route', 'show'), /10\.244\.0\.0\/16/);
      } finally {
        lab.destroy();
      }
    });
  });
}

describe('super-packets with a tiny MSS', () => {
  it('are cut into hundreds of datagrams across several sends and arrive intact', async () => {
    const lab = Lab.create(`${PREFIX}m`, 2, 1450);
    try {
      // batch 2: a super-packet needs more messages than a batch holds.
      const [a, b] = await startWeft(lab, 'vxlan', lab.nodes, ['--batch', '2']);
      try {
        const r = await iperf3(a.node.pod, b.node.pod, b.node.podIp, 2, ['-M', '88']);
        assert.ok(r.bitsPerSecond > 0);
        const s = await a.engine.stats();
        assert.equal(s.counters.tx_drop_bad_gso.packets, 0, 'no super-packet was too fragmented to send');
        assert.equal(s.counters.tx_drop_send_error.packets, 0);
        assert.ok(s.counters.tx_packets.packets > 1000);
      } finally {
        await Promise.all([a.engine.stop(), b.engine.stop()]);
      }
    } finally {
      lab.destroy();
    }
  });
});

describe('engine start-up errors', () => {
  it('names a missing interface, a taken port and a taken TUN, and leaves nothing behind', async () => {
    const lab = Lab.create(`${PREFIX}e`, 1);
    try {
      const node = lab.nodes[0];
      const { EngineProcess } = await import('../../lab/engine-process');
      const base = ['--backend', 'vxlan', '--network', '10.244.0.0/16', '--subnet', '10.244.1.0/24'];

      await assert.rejects(EngineProcess.start(node.ns, [...base, '--iface', 'nosuch0']), (e: Error & { exitCode?: number }) => {
        assert.equal(e.exitCode, 1);
        assert.match(e.message, /interface "nosuch0" not found \(ENODEV\)/);
        return true;
      });

      // Someone else holds 8472 on the node's address.
      const holder = node.ns.spawn(process.execPath, ['-e',
        `const s=require('dgram').createSocket('udp4');s.bind(8472,'${node.underlayIp}',()=>console.log('bound'));setTimeout(()=>{},60000)`]);
      await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
      try {
        await assert.rejects(EngineProcess.start(node.ns, [...base, '--iface', 'eth0']), (e: Error & { exitCode?: number }) => {
          assert.equal(e.exitCode, 1);
          assert.match(e.message, /UDP port 8472 on 192\.168\.77\.1 is already in use \(EADDRINUSE\)/);
          return true;
        });
      } finally {
        holder.kill('SIGKILL');
      }
      assert.throws(() => node.ns.ip('link', 'show', 'flannel.1'), /does not exist/, 'no half-made TUN');

      // Two engines on one node: the second finds flannel.1 taken.
      const first = await EngineProcess.start(node.ns, [...base, '--iface', 'eth0']);
      try {
        await assert.rejects(EngineProcess.start(node.ns, [...base, '--iface', 'eth0', '--port', '9000']), /cannot create TUN device flannel\.1: it is held by process \d+ \(node\)/);
      } finally {
        await first.stop();
      }

      await assert.rejects(EngineProcess.start(node.ns, [...base, '--iface', 'eth0', '--subnet', '10.9.0.0/24']),
        /subnet 10\.9\.0\.0\/24 is not inside the Network 10\.244\.0\.0\/16/);
    } finally {
      lab.destroy();
    }
  });
});
