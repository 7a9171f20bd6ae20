// The README's main job: three lab nodes on one bridge, a weft daemon on
// each on the embedded store (one SQLite file, as one host runs them), the
// vxlan backend with --ip-masq as kube-flannel runs it; each node's pod
// wired by the real CNI plugins (bridge, host-local, portmap, loopback) from
// its subnet.env, with the delegate config flannel's CNI plugin builds;
// every pod pair pinged; a short iperf3; a summary.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { DaemonProcess } from './daemon-process';
import { runPrefix } from './netns';
import { ping } from './overlay';
import { iperf3 } from './iperf';
import { LAB_NETWORK, Lab } from './topology';

const NODES = 3;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false }, kube: { type: 'boolean', default: false } } });
  if (values.kube) {
    // The same three nodes in Kubernetes mode (lab/kube/demo.ts); the lab API server lives only as long as the demo.
    if (values.keep) throw new Error('--keep is not supported with --kube (the lab API server stops with the demo)');
    if (!(await (await import('./kube/demo')).runKubeDemo())) process.exitCode = 1;
    return;
  }
  const prefix = runPrefix('weftdemo');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const netConf = path.join(dir, 'net-conf.json');
  fs.writeFileSync(netConf, `${JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'vxlan' } }, null, 2)}\n`);
  const storeArgs = ['--net-config-path', netConf, '--store-path', path.join(dir, 'leases.db'), '--ip-masq'];

  console.log(`weft demo: ${NODES} nodes in network namespaces ${prefix}-*, files in ${dir}`);
  console.log(`net-conf.json: ${fs.readFileSync(netConf, 'utf8').replace(/\s+/g, ' ').trim()}`);
  const lab = Lab.create(prefix, NODES);
  const daemons: DaemonProcess[] = [];
  let ok = true;
  try {
    for (const node of lab.nodes) {
      daemons.push(DaemonProcess.spawn({ node, dir: path.join(dir, `node${node.index}`), args: storeArgs, detached: values.keep }));
    }
    for (const d of daemons) await d.waitReady();

    console.log('\n== leases and subnet.env (pods wired by the CNI plugins from it)');
    for (const d of daemons) {
      const node = d.opts.node;
      lab.wirePodCni(node, d.subnetFile);
      console.log(`node${node.index} (${node.underlayIp}) ${d.subnetFile}:`);
      for (const line of fs.readFileSync(d.subnetFile, 'utf8').trim().split('\n')) console.log(`    ${line}`);
    }

    console.log('\n== pod to pod over the overlay (3 pings each)');
    const pings: string[][] = [];
    for (const a of lab.nodes) {
      for (const b of lab.nodes) {
        if (a === b) continue;
        const p = ping(a.pod, b.podIp, 3);
        ok &&= p.received === p.sent;
        pings.push([`pod${a.index} ${a.podIp}`, `pod${b.index} ${b.podIp}`, `${p.received}/${p.sent}`, p.rttAvgMs === null ? '-' : `${p.rttAvgMs} ms`]);
      }
    }
    printTable(['from', 'to', 'received', 'avg rtt'], pings);

    console.log('\n== iperf3, pod1 -> pod2, 3 s');
    const [n1, n2] = lab.nodes;
    const r = await iperf3(n1.pod, n2.pod, n2.podIp, 3);
    console.log(`    ${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s received, ${r.retransmits} retransmits`);

    const s = await daemons[0].status();
    console.log(`\n== weft status on node1 (weft status --subnet-file ${daemons[0].subnetFile})`);
    console.log(`    lease ${s.subnet} VtepMAC ${s.vtepMac}, ${s.tun} MTU ${s.mtu}, peers:`);
    for (const p of s.peers) console.log(`      ${p.subnet} via ${p.publicIp} (${p.vtepMac})`);
    const drops = Object.entries(s.counters ?? {}).filter(([k, v]) => k.includes('_drop_') && v.packets > 0);
    console.log(`    tx ${s.counters?.tx_packets.packets} packets, rx ${s.counters?.rx_packets.packets} packets, drops: ${drops.length ? JSON.stringify(Object.fromEntries(drops)) : 'none'}`);

    console.log('\n== summary');
    printTable(
      ['node', 'underlay', 'subnet', 'pod', 'peers'],
      await Promise.all(
        daemons.map(async (d) => {
          const st = await d.status();
          return [`node${d.opts.node.index}`, d.opts.node.underlayIp, st.subnet, d.opts.node.podIp, String(st.peers.length)];
        }),
      ),
    );
    const pairsOk = pings.filter((p) => p[2].split('/')[0] === p[2].split('/')[1]).length;
    console.log(`pod pairs answering: ${pairsOk}/${pings.length}; iperf3 ${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s; result: ${ok ? 'ok' : 'FAILED'}`);
  } catch (err) {
    ok = false;
    console.error(`demo failed: ${(err as Error).message}`);
  } finally {
    if (values.keep) {
      console.log('\n--keep: daemons and namespaces left running. Remove them with:');
      console.log(`  pkill -f '${dir}'; for n in $(ip netns list | grep -o '^${prefix}-[^ ]*'); do ip netns del $n; done; rm -rf ${dir}`);
    } else {
      await Promise.all(daemons.map((d) => d.stop()));
      lab.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  if (!ok) process.exitCode = 1;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `    ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}`;
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

if (require.main === module) {
  runDemo(process.argv.slice(2)).catch((err: Error) => {
    console.error(`demo failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}
