// Turning results into what a reader sees: the netns table (medians with
// min-max), the paired-ratio tables (each repetition's figure over the
// kernel row's, or the default engine's, of the same repetition), the
// control-plane figures and the speed targets, met or not.
import { COLUMNS, type ColumnKey } from './columns';
import type { ControlResult } from './control';
import { type NetnsResult, pairedRatios, REFERENCE_ROW } from './netns';
import type { ProfileResult } from './profile';
import type { Summary } from './stats';
import { textTable } from './table';

export type Table = { head: string[]; rows: string[][] };

const fmtSummary = (s: Summary | null | undefined, digits: number, unit = '') =>
  !s ? '-' : s.n > 1 ? `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : `${s.median.toFixed(digits)}${unit}`;

function present(netns: NetnsResult) {
  // A column nobody measured (UDP in the options phase) is left out.
  return COLUMNS.filter((c) => netns.rows.some((r) => r.summary[c.key]));
}

export function valuesTable(netns: NetnsResult): Table {
  const cols = present(netns);
  return {
    head: ['data plane', 'MTU', ...cols.map((c) => c.label), 'busy %', 'load'],
    rows: netns.rows.map((r) => [
      r.row,
      String(r.spec.mtu),
      ...cols.map((c) => fmtSummary(r.summary[c.key], c.digits)),
      median(r.reps.map((x) => x.cpu.busyShare * 100)).toFixed(0),
      median(r.reps.map((x) => x.loadAvg1)).toFixed(2),
    ]),
  };
}

/** Paired ratios against the kernel row (as measured), or against another row of the same run. */
export function ratioTable(netns: NetnsResult, ref = REFERENCE_ROW): Table {
  const cols = present(netns).filter((c) => !c.weftOnly);
  const refRow = netns.rows.find((r) => r.row === ref);
  return {
    head: [`÷ ${ref}, same rep`, ...cols.map((c) => c.short)],
    rows: netns.rows
      .filter((r) => r.row !== ref && refRow)
      .map((r) => {
        const paired = ref === REFERENCE_ROW ? r.paired : pairedRatios(r, refRow!);
        return [r.row, ...cols.map((c) => fmtSummary(paired[c.key], 2, '×'))];
      }),
  };
}

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function controlTables(c: ControlResult): Table[] {
  const engine: Table = {
    head: ['peers', 'full push ms', 'one-peer delta µs', 'FIB holds'],
    rows: c.engine.map((e) => [String(e.peers), fmtSummary(e.fullPushMs, 2), fmtSummary(e.deltaUs, 1), String(e.held)]),
  };
  const daemon: Table = {
    head: ['leases in etcd', 'start to ready ms', 'RSS at ready MiB', 'peak RSS MiB', 'peers'],
    rows: c.daemon.map((d) => [String(d.leases), d.readyMs.toFixed(0), d.rssMiB.toFixed(1), d.peakRssMiB.toFixed(1), String(d.peers)]),
  };
  const tables = [engine, daemon];
  if (c.leaseToFib) {
    tables.push({
      head: ['lease put -> FIB', 'median ms', 'min–max ms', 'samples'],
      rows: [[`with ${c.leaseToFib.leases} leases`, String(c.leaseToFib.summary?.median ?? '-'), `${c.leaseToFib.summary?.min}–${c.leaseToFib.summary?.max}`, String(c.leaseToFib.samplesMs.length)]],
    });
  }
  return tables;
}

/** The profile phase: s/GB per path per configuration, and each path's heaviest functions in the last turn of each. */
export function profileTables(p: ProfileResult): Table[] {
  const configs = Object.keys(p.summary);
  const sum: Table = {
    head: ['engine CPU s/GB', ...configs, 'now ÷ before'],
    rows: (['tx', 'rx', 'other'] as const).map((k) => {
      const v = configs.map((c) => p.summary[c][k]);
      return [k, ...v.map((x) => x.toFixed(3)), v.length === 2 && v[0] > 0 ? `${(v[1] / v[0]).toFixed(2)}×` : '-'];
    }),
  };
  const top: Table = { head: ['config', 'path', 'heaviest leaf functions (share of the path)'], rows: [] };
  for (const c of configs) {
    const last = [...p.turns].reverse().find((t) => t.config === c);
    if (!last) continue;
    for (const k of ['tx', 'rx'] as const) {
      top.rows.push([c, k, last.paths[k].top.slice(0, 6).map((f) => `${f.fn} ${(f.share * 100).toFixed(0)}%`).join(', ')]);
    }
  }
  return [sum, top];
}

export function text(t: Table): string {
  return textTable(t.head, t.rows);
}

export function markdown(t: Table): string {
  return [`| ${t.head.join(' | ')} |`, `|${t.head.map((_, i) => (i < 1 ? '---' : '---:')).join('|')}|`, ...t.rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export interface Target {
  name: string;
  /** What was measured, in words. */
  measured: string;
  /** null: could not be evaluated (a row or figure missing). */
  met: boolean | null;
}

/** The speed targets (bench/README.md, Targets), on this run's paired medians. */
export function evaluateTargets(netns: NetnsResult | null, control: ControlResult | null): Target[] {
  const t: Target[] = [];
  const paired = (row: string, key: ColumnKey) => netns?.rows.find((r) => r.row === row)?.paired[key] ?? null;
  const ratio = (name: string, row: string, key: ColumnKey, bound: number, atLeast: boolean) => {
    const s = paired(row, key);
    t.push({
      name,
      measured: s ? `paired median ${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)}, ${s.n} reps)` : 'not measured',
      met: s ? (atLeast ? s.median >= bound : s.median <= bound) : null,
    });
  };
  ratio('weft vxlan TCP 1 stream ≥ 0.75× kernel vxlan', 'weft vxlan', 'tcp1', 0.75, true);
  ratio('weft vxlan TCP 4 streams ≥ 0.6× kernel vxlan', 'weft vxlan', 'tcp4', 0.6, true);
  ratio('weft vxlan RTT p50 ≤ 1.5× kernel vxlan', 'weft vxlan', 'rttP50', 1.5, false);
  ratio('weft vxlan RTT p99 ≤ 1.5× kernel vxlan', 'weft vxlan', 'rttP99', 1.5, false);
  ratio('weft vxlan UDP 64 B knee ≥ 1.0× kernel vxlan', 'weft vxlan', 'udp64', 1.0, true);
  ratio('weft vxlan UDP 1400 B knee ≥ 1.0× kernel vxlan', 'weft vxlan', 'udp1400', 1.0, true);
  ratio('weft vxlan+DirectRouting TCP 1 stream ≥ 1.0× kernel vxlan', 'weft vxlan+DirectRouting', 'tcp1', 1.0, true);

  const eng = (n: number) => control?.engine.find((e) => e.peers === n);
  const e5k = eng(5000);
  t.push({ name: '5,000-peer full push ≤ 5 ms', measured: e5k ? `${e5k.fullPushMs.median.toFixed(2)} ms` : 'not measured', met: e5k ? e5k.fullPushMs.median <= 5 : null });
  t.push({ name: 'one-peer delta ≤ 50 µs at 5,000 peers', measured: e5k ? `${e5k.deltaUs.median.toFixed(1)} µs (max ${e5k.deltaUs.max.toFixed(0)})` : 'not measured', met: e5k ? e5k.deltaUs.median <= 50 : null });
  const l2f = control?.leaseToFib?.summary;
  t.push({ name: 'lease put in etcd -> FIB ≤ 100 ms', measured: l2f ? `median ${l2f.median} ms (max ${l2f.max})` : 'not measured', met: l2f ? l2f.median <= 100 : null });
  const d = (n: number) => control?.daemon.find((x) => x.leases === n);
  // MB = 10^6 bytes, as the issue writes it; /proc says KiB.
  const mb = (mib: number) => mib * 1.048576;
  for (const [n, readyS, rss] of [[5000, 1, 80], [20000, 3, 120]] as const) {
    const x = d(n);
    t.push({ name: `${n.toLocaleString('en')} leases: ready ≤ ${readyS} s`, measured: x ? `${(x.readyMs / 1000).toFixed(2)} s` : 'not measured', met: x ? x.readyMs <= readyS * 1000 : null });
    t.push({ name: `${n.toLocaleString('en')} leases: RSS ≤ ${rss} MB`, measured: x ? `${mb(x.peakRssMiB).toFixed(1)} MB peak (${mb(x.rssMiB).toFixed(1)} at ready)` : 'not measured', met: x ? mb(x.peakRssMiB) <= rss : null });
  }
  return t;
}

export function targetsText(targets: Target[]): string {
  return targets.map((t) => `  ${t.met === null ? '[ ?? ]' : t.met ? '[ met ]' : '[ NOT ]'}  ${t.name}: ${t.measured}`).join('\n');
}

/** Per row: the kernel drop counters that moved during all its UDP searches, largest first. */
export function dropsText(netns: NetnsResult): string {
  const lines: string[] = [];
  for (const r of netns.rows) {
    const sum: Record<string, number> = {};
    for (const rep of r.reps) {
      for (const d of [rep.udp64Drops, rep.udp1400Drops]) {
        for (const [k, v] of Object.entries(d ?? {})) if (Number.isFinite(v)) sum[k] = (sum[k] ?? 0) + v;
      }
    }
    const moved = Object.entries(sum)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`);
    lines.push(`  ${r.row.padEnd(26)}  ${moved.length ? moved.join(', ') : 'none'}`);
  }
  return lines.join('\n');
}

