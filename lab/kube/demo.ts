// `npm run demo -- --kube`: the demo's three nodes in Kubernetes mode. The
// lab API server stands in for the cluster (lab/kube/cluster.ts); each node
// is registered with its podCIDR and InternalIP, weft runs there with
// deploy/kube-weft.yml's flags, net-conf.json and ClusterRole, the pods are
// wired by the real CNI plugins, and kubectl shows the nodes with the
// annotations and the condition weft wrote.
import * as fs from 'node:fs';

import type { DaemonProcess } from '../daemon-process';
import { runPrefix } from '../netns';
import { ping } from '../overlay';
import { KubeLab } from './cluster';

const NODES = 3;
const A = 'flannel\\.alpha\\.coreos\\.com';

export async function runKubeDemo(print: (line?: string) => void = console.log): Promise<boolean> {
  const prefix = runPrefix('weftkube');
  print(`weft demo, Kubernetes mode: ${NODES} nodes in network namespaces ${prefix}-*, the lab API server on ${prefix}-api`);
  const kl = await KubeLab.create(prefix, NODES);
  const daemons: DaemonProcess[] = [];
  let ok = true;
  try {
    print(`net-conf.json (deploy/kube-weft.yml's ConfigMap): ${fs.readFileSync(kl.netConfPath, 'utf8').replace(/\s+/g, ' ').trim()}`);
    print(`weft's flags (the DaemonSet's): ${kl.daemonSetArgs.join(' ')}`);
    for (const node of kl.lab.nodes) await kl.register(node);
    print('\n== kubectl get nodes (registered, podCIDRs assigned, no network yet)');
    await kubectlPrint(kl, ['get', 'nodes', '-o', `custom-columns=NAME:.metadata.name,INTERNAL-IP:.status.addresses[0].address,POD-CIDR:.spec.podCIDR`], print);

    for (const node of kl.lab.nodes) daemons.push(await kl.daemon(node));
    for (const d of daemons) await d.waitReady(30_000);
    print('\n== subnet.env on each node (pods wired by the CNI plugins from it)');
    for (const d of daemons) {
      kl.lab.wirePodCni(d.opts.node, d.subnetFile);
      print(`${kl.nodeName(d.opts.node)}: ${fs.readFileSync(d.subnetFile, 'utf8').trim().split('\n').join('  ')}`);
    }

    print('\n== pod to pod over the overlay (3 pings each)');
    for (const a of kl.lab.nodes) {
      for (const b of kl.lab.nodes) {
        if (a === b) continue;
        const p = ping(a.pod, b.podIp, 3);
        ok &&= p.received === p.sent;
        print(`    pod${a.index} ${a.podIp} -> pod${b.index} ${b.podIp}: ${p.received}/${p.sent}${p.rttAvgMs === null ? '' : `, ${p.rttAvgMs} ms`}`);
      }
    }

    print("\n== kubectl get nodes, with the annotations and the condition weft wrote");
    ok &&= await kubectlPrint(
      kl,
      [
        'get',
        'nodes',
        '-o',
        'custom-columns=' +
          [
            'NAME:.metadata.name',
            `KUBE-SUBNET-MANAGER:.metadata.annotations.${A}/kube-subnet-manager`,
            `BACKEND-TYPE:.metadata.annotations.${A}/backend-type`,
            `BACKEND-DATA:.metadata.annotations.${A}/backend-data`,
            `PUBLIC-IP:.metadata.annotations.${A}/public-ip`,
            'NETWORK-UNAVAILABLE:.status.conditions[?(@.type=="NetworkUnavailable")].status',
            'REASON:.status.conditions[?(@.type=="NetworkUnavailable")].reason',
          ].join(','),
      ],
      print,
    );
    print(`\nresult: ${ok ? 'ok' : 'FAILED'}`);
  } catch (err) {
    ok = false;
    print(`demo failed: ${(err as Error).message}`);
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await kl.destroy();
  }
  return ok;
}

async function kubectlPrint(kl: KubeLab, args: string[], print: (line?: string) => void): Promise<boolean> {
  const r = await kl.kubectl(args);
  for (const line of (r.code === 0 ? r.stdout : `kubectl ${args[0]} failed: ${r.stderr}`).trimEnd().split('\n')) print(`    ${line}`);
  return r.code === 0;
}
