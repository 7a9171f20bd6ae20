// The end-to-end bench: every data plane in turn on the same two lab nodes,
// pod1 -> pod2 across the overlay, the same probes for each.
//
//   pod1 (client) - cni0 - [node1] - eth0 ==br0== eth0 - [node2] - cni0 - pod2 (iperf3 -s)
//
// Repetitions go round the rows (kernel, weft vxlan, weft udp, baseline,
// kernel, ...) rather than finishing one row before the next: on a shared
// 2-core machine, other work comes and goes over the ~3 minutes, and going
// round spreads it over every row instead of penalising whichever row ran
// while it did. Each turn: set the pods' MTU to the row's overlay MTU, set
// the row up, check a ping gets through, start an iperf3 server, measure
// ping RTT (idle), TCP 1 stream (the engines' CPU measured over it), TCP 4
// streams, UDP 64 B and 1400 B rate searches, the engines' peak RSS; then
// tear the data plane down (kernel devices deleted, engines stopped). Every
// probe is bounded in time; a turn that fails is reported with its error
// and the others still run.
import * as os from 'node:os';

import { runPrefix } from '../lab/netns';
import { Lab } from '../lab/topology';
import type { NativeStats } from '../src/native';
import { type ColumnKey, COLUMNS, type ColumnValues } from './columns';
import { type DropCounters, dropDelta, dropSnapshot } from './drops';
import { addonStamp, baselineFlags, waitForEngine, type DataPlane, ROW_MTU, type RowName, ROWS, setPodMtu, setupKernel, setupWeft } from './dataplanes';
import { IperfServer, type TcpResult, tcpRun, type UdpSearch, udpSearch } from './iperf';
import { cpuSeconds, peakRssMiB, type PingStats, pingRtt } from './probes';
import { sleep } from './procs';
import { type Summary, summarize } from './stats';

/** Namespaces of this run start with this; run.ts removes them on any exit. */
export const NETNS_PREFIX = runPrefix('wb');

export interface NetnsOptions {
  rows: RowName[];
  reps: number;
  tcpSeconds: number;
  udpProbes: number;
  udpSeconds: number;
  maxLoss: number;
  pingCount: number;
  pingIntervalS: number;
  /** Run the kernel row with flannel's checksum workaround applied (see dataplanes.ts). */
  kernelChecksumWorkaround: boolean;
  log: (line: string) => void;
}

export const DEFAULT_NETNS_OPTIONS: Omit<NetnsOptions, 'log'> = {
  rows: ROWS,
  reps: 3,
  tcpSeconds: 2,
  udpProbes: 5,
  udpSeconds: 1,
  maxLoss: 0.01,
  pingCount: 200,
  pingIntervalS: 0.01,
  kernelChecksumWorkaround: false,
};

export interface RepResult {
  values: ColumnValues;
  tcp1: TcpResult;
  tcp4: TcpResult;
  udp64: UdpSearch;
  udp1400: UdpSearch;
  /** Kernel drop counters that moved during each UDP search (drops.ts). */
  udp64Drops: DropCounters;
  udp1400Drops: DropCounters;
  ping: PingStats;
  /** Per engine (node1, node2): CPU seconds over the TCP-1 run and peak RSS. */
  engineCpuPct: number[];
  engineRssMiB: number[];
  /** mtime of build/Release/weft.node when the turn ran (kernel row too). */
  addon: string;
  /** 1-minute load average when the repetition ended: other work on the machine. */
  loadAvg1: number;
  seconds: number;
}

export interface RowResult {
  row: RowName;
  mtu: number;
  setup: string[];
  reps: RepResult[];
  summary: Record<ColumnKey, Summary | null>;
  /** Per repetition, the engines' counters when they stopped (drops show where loss went). */
  engineStats: Array<Array<NativeStats | undefined>>;
  errors: string[];
  seconds: number;
}

export interface NetnsResult {
  options: Omit<NetnsOptions, 'log'>;
  baselineFlags: string[];
  /** Whether the engine had --no-offload; without it the baseline turns off batching only. */
  offloadSwitch: boolean;
  rows: RowResult[];
  /** Distinct addon builds the turns ran against: more than one means a rebuild mid-run. */
  addonBuilds: string[];
  seconds: number;
}

async function measureRep(dp: DataPlane, lab: Lab, server: IperfServer, o: NetnsOptions): Promise<RepResult> {
  const t0 = Date.now();
  const [n1, n2] = lab.nodes;
  const pids = dp.engines.map((e) => e.child.pid!);

  const ping = await pingRtt(n1.pod, n2.podIp, o.pingCount, o.pingIntervalS);

  const cpu0 = pids.map(cpuSeconds);
  const w0 = process.hrtime.bigint();
  const tcp1 = await tcpRun(server, n1.pod, o.tcpSeconds, 1);
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const engineCpuPct = pids.map((p, i) => ((cpuSeconds(p) - cpu0[i]) / wall) * 100);
  await sleep(100);
  const tcp4 = await tcpRun(server, n1.pod, o.tcpSeconds, 4);
  await sleep(100);
  const search = { probes: o.udpProbes, seconds: o.udpSeconds, maxLoss: o.maxLoss };
  const dev = dp.row === 'weft udp' ? 'flannel0' : 'flannel.1';
  const d0 = dropSnapshot(lab, dev);
  const udp64 = await udpSearch(server, n1.pod, 64, search);
  await sleep(100);
  const d1 = dropSnapshot(lab, dev);
  const udp1400 = await udpSearch(server, n1.pod, 1400, search);
  const d2 = dropSnapshot(lab, dev);
  const engineRssMiB = pids.map(peakRssMiB);

  const weft = pids.length > 0;
  return {
    values: {
      tcp1: tcp1.gbps,
      tcp4: tcp4.gbps,
      udp64: udp64.bestPps / 1e3,
      udp1400: udp1400.bestPps / 1e3,
      rttP50: ping.received ? ping.p50Ms : null,
      rttP99: ping.received ? ping.p99Ms : null,
      // Both daemons together (sender's tx + receiver's rx), % of one core.
      cpu: weft ? engineCpuPct.reduce((a, b) => a + b, 0) : null,
      // The larger of the two daemons' peak resident sets.
      rss: weft ? Math.max(...engineRssMiB) : null,
    },
    tcp1,
    tcp4,
    udp64,
    udp1400,
    udp64Drops: dropDelta(d0, d1),
    udp1400Drops: dropDelta(d1, d2),
    ping,
    engineCpuPct,
    engineRssMiB,
    addon: addonStamp(),
    loadAvg1: Number(os.loadavg()[0].toFixed(2)),
    seconds: (Date.now() - t0) / 1000,
  };
}

function fmtRep(r: RepResult): string {
  const v = r.values;
  const f = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));
  return (
    `tcp1 ${f(v.tcp1, 2)} tcp4 ${f(v.tcp4, 2)} Gbit/s, udp64 ${f(v.udp64, 0)}${r.udp64.senderBound ? '*' : ''} ` +
    `udp1400 ${f(v.udp1400, 0)}${r.udp1400.senderBound ? '*' : ''} kpps, rtt ${f(v.rttP50, 3)}/${f(v.rttP99, 3)} ms, ` +
    `cpu ${f(v.cpu, 0)}% rss ${f(v.rss, 1)} MiB (${r.seconds.toFixed(1)} s, load ${r.loadAvg1})`
  );
}

/** An error in one line: a child's stack trace is for the JSON, not the table. */
function brief(message: string): string {
  const lines = message.split('\n').map((l) => l.trim());
  const error = lines.find((l, i) => i > 0 && /^\w*Error:/.test(l));
  return `${lines[0]}${error ? ` ${error}` : ''}`.slice(0, 240);
}

function emptyRow(row: RowName): RowResult {
  return {
    row,
    mtu: ROW_MTU[row],
    setup: [],
    reps: [],
    summary: Object.fromEntries(COLUMNS.map((c) => [c.key, null])) as Record<ColumnKey, Summary | null>,
    engineStats: [],
    errors: [],
    seconds: 0,
  };
}

/** One repetition of one row, from setup to teardown; appends to result. */
async function runTurn(lab: Lab, result: RowResult, baseline: string[], o: NetnsOptions, rep: number): Promise<void> {
  const t0 = Date.now();
  const row = result.row;
  const [n1, n2] = lab.nodes;
  setPodMtu(lab, ROW_MTU[row]);
  let dp: DataPlane | null = null;
  const server = new IperfServer(n2.pod, n2.podIp);
  try {
    const setup = () =>
      row === 'kernel vxlan' ? Promise.resolve(setupKernel(lab, { checksumWorkaround: o.kernelChecksumWorkaround })) : setupWeft(lab, row, baseline);
    try {
      dp = await setup();
    } catch (err) {
      // An engine that could not load the addon (a rebuild under way in a
      // shared tree): wait for it once, then try the turn again.
      if (!/addon not found|weft\.node/.test((err as Error).message)) throw err;
      await waitForEngine(120_000, o.log);
      dp = await setup();
    }
    result.setup = dp.setup;
    // The path works (and ARP/neighbour entries are warm) before timing it.
    const check = await pingRtt(n1.pod, n2.podIp, 5, 0.05);
    if (check.received === 0) throw new Error(`no ping reply from ${n2.podIp} across ${row}`);
    await server.start();
    const r = await measureRep(dp, lab, server, o);
    result.reps.push(r);
    o.log(`  ${row} #${rep + 1}: ${fmtRep(r)}`);
  } catch (err) {
    const msg = `#${rep + 1}: ${brief((err as Error).message)}`;
    result.errors.push(msg);
    o.log(`  ${row} ${msg} FAILED`);
  } finally {
    server.stop();
    if (dp) {
      if (dp.engines.length) {
        const stopped = await Promise.all(dp.engines.map((e) => e.stop()));
        result.engineStats.push(stopped.map((s) => s.stats));
      }
      await dp.teardown();
    }
    result.seconds += (Date.now() - t0) / 1000;
  }
}

export async function runNetns(o: NetnsOptions): Promise<NetnsResult> {
  const t0 = Date.now();
  const { flags, offloadSwitch } = baselineFlags(await waitForEngine(120_000, o.log));
  if (!offloadSwitch) o.log('  note: this engine has no --no-offload; the baseline row turns off batching only (--batch 1)');
  const lab = Lab.create(NETNS_PREFIX, 2, 1450);
  const rows = o.rows.map(emptyRow);
  try {
    for (let rep = 0; rep < o.reps; rep++) for (const r of rows) await runTurn(lab, r, flags, o, rep);
  } finally {
    lab.destroy();
  }
  for (const r of rows) for (const c of COLUMNS) r.summary[c.key] = summarize(r.reps.map((x) => x.values[c.key]));
  const { log: _log, ...options } = o;
  const addonBuilds = [...new Set(rows.flatMap((r) => r.reps.map((x) => x.addon)))];
  return { options, baselineFlags: flags, offloadSwitch, rows, addonBuilds, seconds: (Date.now() - t0) / 1000 };
}
