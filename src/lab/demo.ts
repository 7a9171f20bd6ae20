// The main job for now: two lab nodes, weft's engine on each, pods talking
// across the overlay in both wire formats. Prints what it did and a summary.
import { parseArgs } from 'node:util';

import type { WireFormat } from '../native';
import { deleteNamespaces, runPrefix } from './netns';
import { ping, startWeft, tcpTransfer } from './overlay';
import { Lab } from './topology';

const POD_MTU: Record<WireFormat, number> = { udp: 1500 - 28, vxlan: 1500 - 50 };
const TRANSFER_BYTES = 32 * 1024 * 1024;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false } } });
  const prefix = runPrefix('weftdemo');
  const rows: string[][] = [];
  let failed = false;
  for (const backend of ['vxlan', 'udp'] as const) {
    const lab = Lab.create(`${prefix}${backend[0]}`, 2, POD_MTU[backend]);
    const keep = values.keep && backend === 'udp';
    try {
      const [a, b] = await startWeft(lab, backend);
      console.log(`\n== ${backend}: node1 ${a.node.underlayIp} (${a.node.subnet}) <-> node2 ${b.node.underlayIp} (${b.node.subnet})`);
      console.log(`   TUN ${a.engine.ready.tun}, MTU ${a.engine.ready.mtu}, UDP port ${a.engine.ready.port}`);
      const p1 = ping(a.node.pod, b.node.podIp, 5);
      const p2 = ping(b.node.pod, a.node.podIp, 5);
      console.log(`   ping pod1 -> pod2: ${p1.received}/${p1.sent}, avg ${p1.rttAvgMs} ms`);
      console.log(`   ping pod2 -> pod1: ${p2.received}/${p2.sent}, avg ${p2.rttAvgMs} ms`);
      const t = await tcpTransfer(a.node.pod, b.node.pod, b.node.podIp, TRANSFER_BYTES);
      const exact = t.receivedBytes === t.bytes && t.receivedSha256 === t.sentSha256;
      const mbit = ((t.bytes * 8) / t.seconds / 1e6).toFixed(0);
      console.log(`   TCP ${t.bytes} bytes pod1 -> pod2 in ${t.seconds.toFixed(2)} s (${mbit} Mbit/s), sha256 ${exact ? 'matches' : 'DIFFERS'}`);
      const sa = await a.engine.stats();
      const drops = Object.entries(sa.counters).filter(([k, v]) => k.includes('drop') && v.packets > 0);
      console.log(`   node1 counters: tx ${sa.counters.tx_packets.packets} pkts, rx ${sa.counters.rx_packets.packets} pkts, drops ${drops.length ? JSON.stringify(Object.fromEntries(drops)) : 'none'}`);
      const ok = p1.received === p1.sent && p2.received === p2.sent && exact;
      failed ||= !ok;
      rows.push([backend, `${p1.received}/${p1.sent}`, `${p2.received}/${p2.sent}`, `${mbit} Mbit/s`, exact ? 'yes' : 'NO', ok ? 'ok' : 'FAIL']);
      if (keep) {
        console.log(`\n   --keep: the engines stop with this process but the namespaces stay; remove them with:`);
        console.log(`   for n in $(ip netns list | grep -o '^${prefix}[^ ]*'); do ip netns del $n; done`);
      }
      await Promise.all([a.engine.stop(), b.engine.stop()]);
    } finally {
      if (!keep) lab.destroy();
    }
  }
  if (!values.keep) deleteNamespaces(prefix);
  console.log('\nformat | ping 1->2 | ping 2->1 | TCP 32 MiB | byte-exact | result');
  for (const r of rows) console.log(r.join(' | '));
  if (failed) process.exitCode = 1;
}
