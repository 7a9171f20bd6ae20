// The data planes the netns bench compares, each set up on the same two lab
// nodes and torn down again before the next, leaving the pods and the
// underlay in place:
//
//   pod1 - cni0 - [node1: <data plane>] - eth0 ==br0== eth0 - [node2: <data plane>] - cni0 - pod2
//
// Three kinds of row:
//   kernel  Linux vxlan flannel.1 on both nodes, as flanneld sets it up
//   engine  `weft engine` on both nodes (the data plane alone, peers fed
//           on stdin), with the row's flags
//   daemon  the weft daemon itself (`node dist/src/cli.js`) on both nodes,
//           on an embedded store, with the row's net-conf.json: weft's real
//           host-gw and vxlan+DirectRouting backends, routes and all
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DaemonProcess } from '../lab/daemon-process';
import { CLI, EngineProcess } from '../lab/engine-process';
import { addKernelVxlanPeer, setupKernelVxlan } from '../lab/kernel-vxlan';
import { engineArgs, peerOf } from '../lab/overlay';
import type { Lab, LabNode } from '../lab/topology';
import type { WireFormat } from '../src/native';
import { track } from '../lab/procs';
import { sleepMs as sleep, until } from '../lab/wait';

export interface RowSpec {
  name: string;
  kind: 'kernel' | 'engine' | 'daemon';
  /** engine rows: the wire format and the flags after the lab's own. */
  backend?: WireFormat;
  args?: string[];
  /** daemon rows: the net-conf.json. */
  netConf?: Record<string, unknown>;
  /** The pods' MTU: what subnet.env says for the backend on the lab's 1500-byte underlay. */
  mtu: number;
  /** The overlay device whose drop counters the UDP searches read; null: none (routes only). */
  overlayDev: string | null;
  /** One line for the report. */
  what: string;
}

/**
 * The engine before the speed work: two threads, 64 slots of 64 KiB, payloads
 * copied into a segment buffer and one sendmmsg per super-packet, one
 * datagram per plain packet, the kernel's TUN queue. The options rows turn
 * back one of these at a time (and try busy polling, which is off).
 */
export const ALL_OPTIONS_OFF = ['--threads', '2', '--batch-bytes', '0', '--no-zero-copy', '--no-send-runs', '--tun-queue', '0'];

const KERNEL: RowSpec = { name: 'kernel vxlan', kind: 'kernel', mtu: 1450, overlayDev: 'flannel.1', what: 'Linux vxlan flannel.1 on both nodes, set up as flanneld does' };
const WEFT_VXLAN: RowSpec = { name: 'weft vxlan', kind: 'engine', backend: 'vxlan', args: [], mtu: 1450, overlayDev: 'flannel.1', what: '`weft engine --backend vxlan`, default options (on 2 CPUs: one thread)' };

/** The main table: every data plane, in one run. */
export const NETNS_ROWS: RowSpec[] = [
  KERNEL,
  WEFT_VXLAN,
  { ...WEFT_VXLAN, name: 'weft vxlan (again)', what: 'the same as weft vxlan, measured again: the noise floor' },
  { name: 'weft udp', kind: 'engine', backend: 'udp', args: [], mtu: 1472, overlayDev: 'flannel0', what: '`weft engine --backend udp` (flannel\'s udp wire format), default options' },
  {
    name: 'flannel-udp-like',
    kind: 'engine',
    backend: 'udp',
    args: ['--batch', '1', '--no-offload', '--threads', '1', '--tun-queue', '0'],
    mtu: 1472,
    overlayDev: 'flannel0',
    what: "weft udp in flannel's udp proxy's shape: one thread, one packet per syscall, no offloads",
  },
  { name: 'weft host-gw', kind: 'daemon', netConf: { Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } }, mtu: 1500, overlayDev: null, what: 'the weft daemon, Backend host-gw: a kernel route per peer, no encapsulation' },
  {
    name: 'weft vxlan+DirectRouting',
    kind: 'daemon',
    netConf: { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } },
    mtu: 1450,
    overlayDev: null,
    what: 'the weft daemon, vxlan with DirectRouting: the peer is on our L2 segment, so a direct route',
  },
];

/** What each speed option buys: weft vxlan with one option turned back at a time. */
export const OPTION_ROWS: RowSpec[] = [
  KERNEL,
  WEFT_VXLAN,
  { ...WEFT_VXLAN, name: 'weft vxlan, 2 threads', args: ['--threads', '2'], what: 'a tx and an rx thread (the default on 2 CPUs is one loop)' },
  { ...WEFT_VXLAN, name: 'weft vxlan, no byte cap', args: ['--batch-bytes', '0'], what: 'batches of 64 packets however large (up to 4 MiB)' },
  { ...WEFT_VXLAN, name: 'weft vxlan, copied segments', args: ['--no-zero-copy'], what: 'payloads copied into a segment buffer, one sendmmsg per super-packet' },
  { ...WEFT_VXLAN, name: 'weft vxlan, no send runs', args: ['--no-send-runs'], what: 'one datagram per plain packet, however many go to one peer' },
  { ...WEFT_VXLAN, name: 'weft vxlan, TUN queue 500', args: ['--tun-queue', '0'], what: "the kernel's TUN transmit queue (500 packets) instead of 1,000" },
  { ...WEFT_VXLAN, name: 'weft vxlan, busy poll 100 µs', args: ['--busy-poll-us', '100'], what: 'keeps polling 100 µs after the last packet before it sleeps (off by default)' },
  { ...WEFT_VXLAN, name: 'weft vxlan, all options off', args: ALL_OPTIONS_OFF, what: 'all of them turned back: the engine before the speed work (but the checksum)' },
];

const MACS = ['02:77:00:00:00:01', '02:77:00:00:00:02'];

export interface DataPlane {
  row: RowSpec;
  /** Processes whose weft-* threads are the data plane (engines, daemons); empty for the kernel row. */
  pids: number[];
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
 * Sets flannel.1's checksum offload on a kernel-to-kernel pair. The lab
 * helper leaves flanneld's default (on); `--kernel-csum-off` (bench/run.ts)
 * measures flannel's documented workaround (tx-checksum-ip-generic off)
 * instead, which once let a userspace receiver on a virtual NIC see filled
 * checksums. With it, flannel.1 loses checksum offload and with it
 * TSO/GSO, so every TCP segment crosses the vxlan device on its own;
 * without it, 64 KiB super-packets are encapsulated once and segmented late.
 */
function kernelChecksum(node: LabNode, on: boolean): string {
  const v = on ? 'on' : 'off';
  node.ns.exec('ethtool', ['-K', 'flannel.1', 'tx-checksum-ip-generic', v]);
  return `ip netns exec ${node.ns.name} ethtool -K flannel.1 tx-checksum-ip-generic ${v}`;
}

function setupKernel(lab: Lab, row: RowSpec, checksumWorkaround: boolean): DataPlane {
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
    if (checksumWorkaround) for (const n of [n1, n2]) setup.push(kernelChecksum(n, false));
  } catch (err) {
    down();
    throw err;
  }
  return { row, pids: [], setup, teardown: async () => down() };
}

async function setupEngine(lab: Lab, row: RowSpec): Promise<DataPlane> {
  const backend = row.backend!;
  const engines: EngineProcess[] = [];
  const setup: string[] = [];
  const stopAll = async () => {
    await Promise.all(engines.map((e) => e.stop()));
  };
  try {
    for (const [i, n] of lab.nodes.entries()) {
      const args = [...engineArgs(backend, n, MACS[i]), ...(row.args ?? [])];
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
  return { row, pids: engines.map((e) => e.child.pid!), setup, teardown: stopAll };
}

/**
 * The daemon on both nodes, one embedded store per row kind under dir.
 * Each node's subnet.env is seeded with the subnet its pod is wired for, so
 * the daemon asks for that one (flanneld's previous-subnet rule) and the
 * pods stay put across rows. flannel leaves a backend's routes behind when
 * it stops (so does weft): teardown removes them, or the next row's traffic
 * would take them instead of its own data plane.
 */
async function setupDaemon(lab: Lab, row: RowSpec, dir: string): Promise<DataPlane> {
  const tag = row.name.replace(/[^a-z0-9]+/gi, '-');
  const conf = path.join(dir, `${tag}.json`);
  fs.writeFileSync(conf, JSON.stringify(row.netConf));
  const args = ['--net-config-path', conf, '--store-path', path.join(dir, `${tag}.db`)];
  const daemons: DaemonProcess[] = [];
  const setup: string[] = [`net-conf.json: ${JSON.stringify(row.netConf)}`];
  const down = async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const [i, n] of lab.nodes.entries()) {
      try {
        n.ns.ip('route', 'del', lab.nodes[1 - i].subnet);
      } catch {
        // the daemon had not routed it
      }
    }
  };
  try {
    for (const n of lab.nodes) {
      const nodeDir = path.join(dir, `${tag}-n${n.index}`);
      fs.mkdirSync(nodeDir, { recursive: true });
      const gw = n.gatewayIp;
      fs.writeFileSync(path.join(nodeDir, 'subnet.env'), `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${gw}/24\nFLANNEL_MTU=${row.mtu}\nFLANNEL_IPMASQ=false\n`);
      const d = DaemonProcess.spawn({ node: n, dir: nodeDir, args });
      track(d.child);
      daemons.push(d);
      setup.push(`ip netns exec ${n.ns.name} node dist/src/cli.js --iface eth0 --subnet-file ${nodeDir}/subnet.env ${args.join(' ')}`);
    }
    for (const [i, d] of daemons.entries()) {
      const s = await d.waitReady(30_000);
      if (s.subnet !== lab.nodes[i].subnet) throw new Error(`${row.name}: node${i + 1} leased ${s.subnet}, not ${lab.nodes[i].subnet}`);
    }
    for (const [i, d] of daemons.entries()) {
      const want = lab.nodes[1 - i].subnet;
      await until(`${row.name}: node${i + 1} has node${2 - i}'s subnet as a peer`, 15_000, async () => (await d.status()).peers.some((p) => p.subnet === want));
    }
  } catch (err) {
    await down();
    throw err;
  }
  return { row, pids: daemons.map((d) => d.child.pid!), setup, teardown: down };
}

export function setupRow(lab: Lab, row: RowSpec, o: { dir: string; kernelChecksumWorkaround: boolean }): Promise<DataPlane> {
  if (row.kind === 'kernel') return Promise.resolve(setupKernel(lab, row, o.kernelChecksumWorkaround));
  if (row.kind === 'engine') return setupEngine(lab, row);
  return setupDaemon(lab, row, o.dir);
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
