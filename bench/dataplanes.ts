// The four data planes the netns bench compares, each set up on the same
// two lab nodes and torn down again before the next, leaving the pods and
// the underlay in place:
//
//   pod1 - cni0 - [node1: <data plane>] - eth0 ==br0== eth0 - [node2: <data plane>] - cni0 - pod2
//
//   kernel vxlan   Linux vxlan flannel.1 on both nodes, as flanneld sets it up
//   weft vxlan     `weft engine --backend vxlan` on both (default batch and offloads)
//   weft udp       `weft engine --backend udp` on both
//   weft baseline  weft vxlan with batching and offloads off: one packet per
//                  syscall, flannel udp's shape, the same code otherwise
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CLI, EngineProcess } from '../lab/engine-process';
import { addKernelVxlanPeer, setupKernelVxlan } from '../lab/kernel-vxlan';
import { engineArgs, peerOf } from '../lab/overlay';
import type { Lab, LabNode } from '../lab/topology';
import type { WireFormat } from '../src/native';
import { sleep, track } from './procs';

export type RowName = 'kernel vxlan' | 'weft vxlan' | 'weft udp' | 'weft baseline';
export const ROWS: RowName[] = ['kernel vxlan', 'weft vxlan', 'weft udp', 'weft baseline'];

/** Overlay MTU of each row with the lab's 1500-byte underlay: the pods get the same. */
export const ROW_MTU: Record<RowName, number> = { 'kernel vxlan': 1450, 'weft vxlan': 1450, 'weft udp': 1472, 'weft baseline': 1450 };

const MACS = ['02:77:00:00:00:01', '02:77:00:00:00:02'];

export interface DataPlane {
  row: RowName;
  /** The weft engine processes (node1, node2); empty for the kernel row. */
  engines: EngineProcess[];
  /** What was run to set it up, for the report. */
  setup: string[];
  teardown(): Promise<void>;
}

const ADDON = path.resolve(__dirname, '..', '..', 'build', 'Release', 'weft.node');

/** mtime of the addon the engines load: a run whose rows saw different builds says so. */
export function addonStamp(): string {
  try {
    return fs.statSync(ADDON).mtime.toISOString();
  } catch {
    return 'missing';
  }
}

/**
 * `weft --help`, waiting (up to timeoutMs) while the addon is missing or
 * half-written: in a shared tree someone may be rebuilding it, and an
 * engine that cannot load it fails every row it touches.
 */
export async function waitForEngine(timeoutMs = 120_000, log?: (l: string) => void): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let said = false;
  for (;;) {
    try {
      return execFileSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`weft cannot start (is the addon built? npx node-gyp rebuild): ${String(err).split('\n')[0]}`);
      if (!said) log?.('  waiting for the weft addon to be loadable (a rebuild in progress?)');
      said = true;
      await sleep(2000);
    }
  }
}

/**
 * The engine flags that switch batching and offloads off. THE one place to
 * change if the engine's flag changes: `--no-offload` is used when
 * `weft --help` lists it, so a build without offloads still gives a
 * (batching-only) baseline, and the report says which it was.
 */
export function baselineFlags(help: string): { flags: string[]; offloadSwitch: boolean } {
  const offloadSwitch = help.includes('--no-offload');
  return { flags: ['--batch', '1', ...(offloadSwitch ? ['--no-offload'] : [])], offloadSwitch };
}

/**
 * Sets flannel.1's checksum offload on a kernel-to-kernel pair. The lab
 * helper leaves flanneld's default (on); `--kernel-csum-off` (bench/run.ts)
 * measures flannel's documented workaround (tx-checksum-ip-generic off)
 * instead, which once let a userspace receiver on a virtual NIC see filled
 * checksums. With it, flannel.1 loses checksum offload and with it
 * TSO/GSO, so every TCP segment crosses the vxlan device on its own;
 * without it, 64 KiB super-packets are encapsulated once and segmented late.
 */
function kernelChecksumDefault(node: LabNode, on: boolean): string {
  const v = on ? 'on' : 'off';
  node.ns.exec('ethtool', ['-K', 'flannel.1', 'tx-checksum-ip-generic', v]);
  return `ip netns exec ${node.ns.name} ethtool -K flannel.1 tx-checksum-ip-generic ${v}`;
}

export function setupKernel(lab: Lab, o: { checksumWorkaround: boolean }): DataPlane {
  const [n1, n2] = lab.nodes;
  const setup: string[] = [];
  const down = () => {
    for (const n of [n1, n2]) {
      try {
        n.ns.ip('link', 'del', 'flannel.1');
      } catch {
        // not there (a failed setup)
      }
    }
  };
  try {
    for (const [i, n] of [n1, n2].entries()) {
      setupKernelVxlan(n, MACS[i]);
      const ns = n.ns.name;
      setup.push(
        `ip -n ${ns} link add flannel.1 type vxlan id 1 local ${n.underlayIp} dev eth0 nolearning dstport 8472`,
        `ip -n ${ns} link set flannel.1 address ${MACS[i]} mtu 1450`,
        `ip netns exec ${ns} sh -c 'echo 0 > /proc/sys/net/ipv6/conf/flannel.1/accept_ra'`,
        `ip -n ${ns} addr add ${n.subnet.replace(/\/\d+$/, '')}/32 dev flannel.1`,
        `ip -n ${ns} link set flannel.1 up`,
      );
    }
    for (const [i, n] of [n1, n2].entries()) {
      const o2 = i === 0 ? n2 : n1;
      const mac = MACS[1 - i];
      addKernelVxlanPeer(n, peerOf(o2, mac));
      const gw = o2.subnet.replace(/\.0\/\d+$/, '.0');
      const ns = n.ns.name;
      setup.push(
        `ip -n ${ns} neigh replace ${gw} dev flannel.1 lladdr ${mac} nud permanent`,
        `ip netns exec ${ns} bridge fdb replace ${mac} dev flannel.1 dst ${o2.underlayIp} self permanent`,
        `ip -n ${ns} route replace ${o2.subnet} via ${gw} dev flannel.1 onlink`,
      );
    }
    if (o.checksumWorkaround) for (const n of [n1, n2]) setup.push(kernelChecksumDefault(n, false));
  } catch (err) {
    down();
    throw err;
  }
  return { row: 'kernel vxlan', engines: [], setup, teardown: async () => down() };
}

export async function setupWeft(lab: Lab, row: Exclude<RowName, 'kernel vxlan'>, baseline: string[]): Promise<DataPlane> {
  const backend: WireFormat = row === 'weft udp' ? 'udp' : 'vxlan';
  const extra = row === 'weft baseline' ? baseline : [];
  const engines: EngineProcess[] = [];
  const setup: string[] = [];
  const stopAll = async () => {
    await Promise.all(engines.map((e) => e.stop()));
  };
  try {
    for (const [i, n] of lab.nodes.entries()) {
      const args = [...engineArgs(backend, n, MACS[i]), ...extra];
      const e = await EngineProcess.start(n.ns, args);
      track(e.child);
      engines.push(e);
      setup.push(`ip netns exec ${n.ns.name} node dist/src/cli.js engine ${args.join(' ')}`);
    }
    for (const [i, e] of engines.entries()) {
      const other = lab.nodes[1 - i];
      await e.setPeers([peerOf(other, backend === 'vxlan' ? MACS[1 - i] : undefined)]);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return { row, engines, setup, teardown: stopAll };
}

/** Pod side of a row: cni0, the pod's veth pair and the pod's eth0 at the overlay MTU. */
export function setPodMtu(lab: Lab, mtu: number): void {
  for (const n of lab.nodes) {
    n.pod.ip('link', 'set', 'eth0', 'mtu', String(mtu));
    n.ns.ip('link', 'set', 'vethpod', 'mtu', String(mtu));
    n.ns.ip('link', 'set', 'cni0', 'mtu', String(mtu));
    // Forget path MTUs learnt under the previous row.
    n.pod.ip('route', 'flush', 'cache');
    n.ns.ip('route', 'flush', 'cache');
  }
}
