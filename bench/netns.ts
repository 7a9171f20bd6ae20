// The end-to-end bench: every data plane in turn on the same two lab nodes,
// pod1 -> pod2 across the overlay, the same probes for each.
//
//   pod1 (client) - cni0 - [node1] - eth0 ==br0== eth0 - [node2] - cni0 - pod2 (iperf3 -s)
//
// On a shared 2-CPU machine other work comes and goes over a run and moves
// every figure by 10-30 %, so nothing is compared across time:
// - repetitions go round the rows, and each repetition starts one row
//   further along (rotating order), so no row always runs first or last;
// - every weft figure is divided by the kernel row's figure *of the same
//   repetition* (a paired ratio), and the ratios' median is what counts:
//   a busy minute then moves both sides of a ratio, not one;
// - a second "weft vxlan" row measures nothing new: its spread against the
//   first is the noise floor the other differences must clear.
// Each turn: set the pods' MTU to the row's, set the row up, check a ping
// gets through, start an iperf3 server, measure ping RTT (idle), TCP 1
// stream (with CPU accounting over it, bench/cpu.ts), TCP 4 streams, and
// (full rows) UDP 64 B and 1400 B rate searches; then tear the row down.
// Every probe is bounded in time; a turn that fails is reported with its
// error and the others still run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { runPrefix } from '../lab/netns';
import { Lab } from '../lab/topology';
import { type ColumnKey, COLUMNS, type ColumnValues } from './columns';
import { cpuWindow, type CpuWindow, peakRssMiB } from './cpu';
import { type DataPlane, addonStamp, type RowSpec, setPodMtu, setupRow, waitForEngine } from './dataplanes';
import { type DropCounters, dropDelta, dropSnapshot } from './drops';
import { IperfServer, type TcpResult, tcpRun, type UdpSearch, udpSearch } from '../lab/iperf';
import { type PingStats, pingRtt } from './probes';
import { sleepMs as sleep } from '../lab/wait';
import { type Summary, summarize } from './stats';

/** Namespaces of this run start with this; run.ts removes them on any exit. */
export const NETNS_PREFIX = runPrefix('wb');

export interface NetnsOptions {
  rows: RowSpec[];
  reps: number;
  tcpSeconds: number;
  /** Run the UDP rate searches (the main table); the options phase skips them. */
  udp: boolean;
  udpProbes: number;
  udpSeconds: number;
  maxLoss: number;
  pingCount: number;
  pingIntervalS: number;
  /** Run the kernel row with flannel's checksum workaround applied (see dataplanes.ts). */
  kernelChecksumWorkaround: boolean;
  log: (line: string) => void;
}

export const DEFAULT_NETNS_OPTIONS = {
  reps: 5,
  tcpSeconds: 2,
  udp: true,
  udpProbes: 5,
  udpSeconds: 1,
  maxLoss: 0.01,
  pingCount: 200,
  pingIntervalS: 0.01,
  kernelChecksumWorkaround: false,
};

export interface RepResult {
  /** Which repetition (0-based) and where in its round this turn ran. */
  rep: number;
  position: number;
  values: ColumnValues;
  tcp1: TcpResult;
  tcp4: TcpResult;
  udp64?: UdpSearch;
  udp1400?: UdpSearch;
  /** Kernel drop counters that moved during each UDP search (drops.ts). */
  udp64Drops?: DropCounters;
  udp1400Drops?: DropCounters;
  ping: PingStats;
  /** CPU over the TCP-1 run, and the GB it moved (what the receiver got). */
  cpu: CpuWindow;
  gb: number;
  /** Peak RSS of each weft process (engines or daemons). */
  rssMiB: number[];
  /** mtime of build/Release/weft.node when the turn ran (kernel row too). */
  addon: string;
  /** 1-minute load average when the turn ended: other work on the machine. */
  loadAvg1: number;
  seconds: number;
}

export interface RowResult {
  row: string;
  spec: RowSpec;
  setup: string[];
  reps: RepResult[];
  summary: Record<ColumnKey, Summary | null>;
  /** Per column, the per-repetition ratios to the kernel row of the same repetition, summarised. */
  paired: Partial<Record<ColumnKey, Summary | null>>;
  errors: string[];
  seconds: number;
}

export interface NetnsResult {
  options: Omit<NetnsOptions, 'log' | 'rows'>;
  rows: RowResult[];
  /** Distinct addon builds the turns ran against: more than one means a rebuild mid-run. */
  addonBuilds: string[];
  seconds: number;
}

export const REFERENCE_ROW = 'kernel vxlan';

async function measure(dp: DataPlane, lab: Lab, server: IperfServer, o: NetnsOptions, rep: number, position: number): Promise<RepResult> {
  const t0 = Date.now();
  const [n1, n2] = lab.nodes;

  const ping = await pingRtt(n1.pod, n2.podIp, o.pingCount, o.pingIntervalS);

  const end = cpuWindow(dp.pids);
  const tcp1 = await tcpRun(server, n1.pod, o.tcpSeconds, 1);
  const cpu = end();
  await sleep(100);
  const tcp4 = await tcpRun(server, n1.pod, o.tcpSeconds, 4);

  let udp64: UdpSearch | undefined;
  let udp1400: UdpSearch | undefined;
  let udp64Drops: DropCounters | undefined;
  let udp1400Drops: DropCounters | undefined;
  if (o.udp) {
    await sleep(100);
    const search = { probes: o.udpProbes, seconds: o.udpSeconds, maxLoss: o.maxLoss };
    const d0 = dropSnapshot(lab, dp.row.overlayDev);
    udp64 = await udpSearch(server, n1.pod, 64, search);
    await sleep(100);
    const d1 = dropSnapshot(lab, dp.row.overlayDev);
    udp1400 = await udpSearch(server, n1.pod, 1400, search);
    const d2 = dropSnapshot(lab, dp.row.overlayDev);
    udp64Drops = dropDelta(d0, d1);
    udp1400Drops = dropDelta(d1, d2);
  }
  const rssMiB = dp.pids.map(peakRssMiB);

  const weft = dp.pids.length > 0;
  const gb = tcp1.bytes / 1e9;
  const perGB = (s: number) => (gb > 0 ? s / gb : null);
  return {
    rep,
    position,
    values: {
      tcp1: tcp1.gbps,
      tcp4: tcp4.gbps,
      udp64: udp64 ? udp64.bestPps / 1e3 : null,
      udp1400: udp1400 ? udp1400.bestPps / 1e3 : null,
      rttP50: ping.received ? ping.p50Ms : null,
      rttP99: ping.received ? ping.p99Ms : null,
      engineGB: weft ? perGB(cpu.engineS) : null,
      softirqGB: perGB(cpu.softirqS),
      busyGB: perGB(cpu.busyS),
      rss: weft ? Math.max(...rssMiB) : null,
    },
    tcp1,
    tcp4,
    udp64,
    udp1400,
    udp64Drops,
    udp1400Drops,
    ping,
    cpu,
    gb,
    rssMiB,
    addon: addonStamp(),
    loadAvg1: Number(os.loadavg()[0].toFixed(2)),
    seconds: (Date.now() - t0) / 1000,
  };
}

function fmtRep(r: RepResult): string {
  const v = r.values;
  const f = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));
  const udp = r.udp64
    ? `, udp64 ${f(v.udp64, 0)}${r.udp64.senderBound ? '*' : ''} udp1400 ${f(v.udp1400, 0)}${r.udp1400!.senderBound ? '*' : ''} kpps`
    : '';
  return (
    `tcp1 ${f(v.tcp1, 2)} tcp4 ${f(v.tcp4, 2)} Gbit/s${udp}, rtt ${f(v.rttP50, 3)}/${f(v.rttP99, 3)} ms, ` +
    `s/GB engine ${f(v.engineGB, 2)} softirq ${f(v.softirqGB, 2)} machine ${f(v.busyGB, 2)}, ` +
    `busy ${(r.cpu.busyShare * 100).toFixed(0)}% load ${r.loadAvg1} (${r.seconds.toFixed(1)} s)`
  );
}

/** An error in one line: a child's stack trace is for the JSON, not the table. */
function brief(message: string): string {
  const lines = message.split('\n').map((l) => l.trim());
  const error = lines.find((l, i) => i > 0 && /^\w*Error:/.test(l));
  return `${lines[0]}${error ? ` ${error}` : ''}`.slice(0, 240);
}

function emptyRow(spec: RowSpec): RowResult {
  return {
    row: spec.name,
    spec,
    setup: [],
    reps: [],
    summary: Object.fromEntries(COLUMNS.map((c) => [c.key, null])) as Record<ColumnKey, Summary | null>,
    paired: {},
    errors: [],
    seconds: 0,
  };
}

/** One repetition of one row, from setup to teardown; appends to result. */
async function runTurn(lab: Lab, result: RowResult, o: NetnsOptions, dir: string, rep: number, position: number): Promise<void> {
  const t0 = Date.now();
  const row = result.spec;
  const [n1, n2] = lab.nodes;
  setPodMtu(lab, row.mtu);
  let dp: DataPlane | null = null;
  const server = new IperfServer(n2.pod, n2.podIp);
  try {
    const setup = () => setupRow(lab, row, { dir, kernelChecksumWorkaround: o.kernelChecksumWorkaround });
    try {
      dp = await setup();
    } catch (err) {
      // A process that could not load the addon (a rebuild under way in a
      // shared tree): wait for it once, then try the turn again.
      if (!/addon not found|weft\.node/.test((err as Error).message)) throw err;
      await waitForEngine(120_000, o.log);
      dp = await setup();
    }
    result.setup = dp.setup;
    // The path works (and ARP/neighbour entries are warm) before timing it.
    const check = await pingRtt(n1.pod, n2.podIp, 5, 0.05);
    if (check.received === 0) throw new Error(`no ping reply from ${n2.podIp} across ${row.name}`);
    await server.start();
    const r = await measure(dp, lab, server, o, rep, position);
    result.reps.push(r);
    o.log(`  ${row.name} #${rep + 1}: ${fmtRep(r)}`);
  } catch (err) {
    const msg = `#${rep + 1}: ${brief((err as Error).message)}`;
    result.errors.push(msg);
    o.log(`  ${row.name} ${msg} FAILED`);
  } finally {
    server.stop();
    if (dp) await dp.teardown();
    result.seconds += (Date.now() - t0) / 1000;
  }
}

/** Rows in the order repetition `rep` runs them: the list turned `rep` places. */
export function rotation<T>(rows: T[], rep: number): T[] {
  const k = rep % rows.length;
  return [...rows.slice(k), ...rows.slice(0, k)];
}

/** Per column, each repetition's value over the reference row's in the same repetition. */
export function pairedRatios(row: RowResult, ref: RowResult): Partial<Record<ColumnKey, Summary | null>> {
  const out: Partial<Record<ColumnKey, Summary | null>> = {};
  for (const c of COLUMNS) {
    if (c.weftOnly) continue;
    const ratios = row.reps.map((r) => {
      const k = ref.reps.find((x) => x.rep === r.rep);
      const a = r.values[c.key];
      const b = k?.values[c.key];
      return a !== null && b !== null && b !== undefined && b > 0 ? a / b : null;
    });
    out[c.key] = summarize(ratios);
  }
  return out;
}

export async function runNetns(o: NetnsOptions): Promise<NetnsResult> {
  const t0 = Date.now();
  await waitForEngine(120_000, o.log);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${NETNS_PREFIX}`));
  const lab = Lab.create(NETNS_PREFIX, 2, 1450);
  const rows = o.rows.map(emptyRow);
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      const order = rotation(rows, rep);
      for (const [position, r] of order.entries()) await runTurn(lab, r, o, dir, rep, position);
    }
  } finally {
    lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const ref = rows.find((r) => r.row === REFERENCE_ROW);
  for (const r of rows) {
    for (const c of COLUMNS) r.summary[c.key] = summarize(r.reps.map((x) => x.values[c.key]));
    if (ref && r !== ref) r.paired = pairedRatios(r, ref);
  }
  const { log: _log, rows: _rows, ...options } = o;
  const addonBuilds = [...new Set(rows.flatMap((r) => r.reps.map((x) => x.addon)))];
  return { options, rows, addonBuilds, seconds: (Date.now() - t0) / 1000 };
}
