// The engine's loop backstop (REDTEAM F3): a peer whose public IP lies in
// the overlay Network makes every datagram sent to it route back into the
// TUN. The engine must drop its own datagrams there (tx_drop_loop) instead
// of encapsulating them again forever, for plain packets and for a
// UDP_SEGMENT run, which comes back as one super-packet (the TUN takes
// USO), in both wire formats, offloads on and off.
//
//   pod1 - cni0 - [node1: weft flannel.1/flannel0] - eth0 ==br0==
//   peer 10.244.200.0/24 at 10.244.200.1: inside 10.244.0.0/16, routed into the TUN
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping, startWeft, type WeftNode } from '../../lab/overlay';
import { Lab } from '../../lab/topology';
import type { NativeStats } from '../../src/native';

const PREFIX = runPrefix('wlp');
after(() => deleteNamespaces(PREFIX));

const LOOPING_PEER = { subnet: '10.244.200.0/24', publicIp: '10.244.200.1', vtepMac: '02:00:00:00:c8:01' };

// One 8000-byte UDP send cut into 1000-byte datagrams by the kernel (UDP_SEGMENT).
const USO_SEND = [
  'import socket',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  's.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT',
  's.sendto(b"x" * 8000, ("10.244.200.5", 9999))',
].join('\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const backend of ['vxlan', 'udp'] as const) {
  for (const offload of [true, false]) {
    describe(`loop backstop, ${backend}, offloads ${offload ? 'on' : 'off'}`, () => {
      it('sends a packet for a peer inside the overlay once, then drops it as our own', async (t) => {
        const lab = Lab.create(`${PREFIX}${backend[0]}${offload ? 'o' : 'n'}`, 1, backend === 'vxlan' ? 1450 : 1472);
        let nodes: WeftNode[] = [];
        try {
          const [n1] = lab.nodes;
          nodes = await startWeft(lab, backend, lab.nodes, offload ? [] : ['--no-offload']);
          const [w] = nodes;
          await w.engine.setPeers([backend === 'vxlan' ? LOOPING_PEER : { ...LOOPING_PEER, vtepMac: undefined }]);
          const tx = (s: NativeStats) => ({ sent: s.counters.tx_packets.packets, loop: s.counters.tx_drop_loop.packets });

          assert.equal(ping(n1.pod, '10.244.200.5', 1).received, 0);
          await sleep(500);
          const a = tx(await w.engine.stats());
          await sleep(500);
          const b = tx(await w.engine.stats());
          t.diagnostic(`one ping: ${a.sent} datagrams sent, ${a.loop} dropped as our own`);
          assert.ok(a.sent >= 1 && a.sent <= 3, `sent ${a.sent}`);
          assert.ok(a.loop >= 1 && a.loop <= a.sent, `dropped ${a.loop}`);
          assert.deepEqual(b, a, 'nothing more once the ping is over');

          // 8 datagrams in one send from the pod.
          n1.pod.exec('python3', ['-c', USO_SEND]);
          await sleep(500);
          const c = tx(await w.engine.stats());
          await sleep(500);
          const d = tx(await w.engine.stats());
          t.diagnostic(`one UDP_SEGMENT send: ${c.sent - b.sent} datagrams sent, ${c.loop - b.loop} dropped as our own`);
          assert.equal(c.sent - b.sent, 8, 'the 8 datagrams went out once');
          // With offloads the run of 8 comes back as one super-packet, checked before it is cut.
          const back = c.loop - b.loop;
          assert.ok(offload ? back >= 1 && back <= 2 : back === 8, `dropped ${back}`);
          assert.deepEqual(d, c, 'nothing more once the send is over');
          assert.equal((await w.engine.stats()).fatalError, null);
        } finally {
          await Promise.all(nodes.map((n) => n.engine.stop()));
          lab.destroy();
        }
      });
    });
  }
}
