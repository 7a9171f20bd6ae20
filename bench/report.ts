// Turning results into what a reader sees: the netns table (medians with
// min-max), the ratio tables (every column against the kernel row and the
// baseline row) and the targets, met or not.
import { COLUMNS, type ColumnKey } from './columns';
import type { RowName } from './dataplanes';
import type { MicroResult } from './micro';
import type { NetnsResult, RowResult } from './netns';
import { textTable } from './table';

export type Ratios = Partial<Record<RowName, Partial<Record<ColumnKey, number>>>>;

/** median(row) / median(ref) for every column both have; ref's own ratios are 1. */
export function ratiosAgainst(netns: NetnsResult, ref: RowName): Ratios {
  const refRow = netns.rows.find((r) => r.row === ref);
  const out: Ratios = {};
  if (!refRow) return out;
  for (const r of netns.rows) {
    const m: Partial<Record<ColumnKey, number>> = {};
    for (const c of COLUMNS) {
      const a = r.summary[c.key]?.median;
      const b = refRow.summary[c.key]?.median;
      if (a !== undefined && b !== undefined && b > 0) m[c.key] = a / b;
    }
    out[r.row] = m;
  }
  return out;
}

function cell(r: RowResult, key: ColumnKey, digits: number): string {
  const s = r.summary[key];
  if (!s) return '-';
  const f = (x: number) => x.toFixed(digits);
  return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median);
}

export function netnsTable(netns: NetnsResult): string {
  const head = ['data plane', 'MTU', ...COLUMNS.map((c) => c.label)];
  const rows = netns.rows.map((r) => [r.row, String(r.mtu), ...COLUMNS.map((c) => cell(r, c.key, c.digits))]);
  return textTable(head, rows);
}

export function ratioTable(netns: NetnsResult, ratios: Ratios, ref: RowName): string {
  const head = [`× ${ref}`, ...COLUMNS.map((c) => c.short)];
  const rows = netns.rows
    .filter((r) => r.row !== ref)
    .map((r) => [r.row, ...COLUMNS.map((c) => (ratios[r.row]?.[c.key] === undefined ? '-' : `${ratios[r.row]![c.key]!.toFixed(2)}×`))]);
  return textTable(head, rows);
}

/** Same table as GitHub markdown, for bench/README.md. */
export function markdownTables(netns: NetnsResult, vsKernel: Ratios, vsBaseline: Ratios): string {
  const md = (head: string[], rows: string[][]) =>
    [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 1 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const main = md(
    ['data plane', 'MTU', ...COLUMNS.map((c) => c.label)],
    netns.rows.map((r) => [r.row, String(r.mtu), ...COLUMNS.map((c) => cell(r, c.key, c.digits))]),
  );
  const ratio = (ratios: Ratios, ref: RowName) =>
    md(
      [`× ${ref}`, ...COLUMNS.map((c) => c.short)],
      netns.rows
        .filter((r) => r.row !== ref)
        .map((r) => [r.row, ...COLUMNS.map((c) => (ratios[r.row]?.[c.key] === undefined ? '-' : `${ratios[r.row]![c.key]!.toFixed(2)}×`))]),
    );
  return `${main}\n\n${ratio(vsKernel, 'kernel vxlan')}\n\n${ratio(vsBaseline, 'weft baseline')}`;
}

export interface Target {
  name: string;
  /** What was measured, in words. */
  measured: string;
  /** null: could not be evaluated (a row or figure missing). */
  met: boolean | null;
}

export function evaluateTargets(micro: MicroResult[] | null, netns: NetnsResult | null): Target[] {
  const med = (row: RowName, key: ColumnKey) => netns?.rows.find((r) => r.row === row)?.summary[key]?.median;
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  const t: Target[] = [];
  const atLeast = (name: string, row: RowName, key: ColumnKey, ref: RowName, factor: number, unit: string, d: number) => {
    const a = med(row, key);
    const b = med(ref, key);
    const r = ratio(a, b);
    t.push({
      name,
      measured: r === undefined ? 'not measured' : `${a!.toFixed(d)} vs ${b!.toFixed(d)} ${unit} = ${r.toFixed(2)}×`,
      met: r === undefined ? null : r >= factor,
    });
  };
  atLeast('weft vxlan TCP 1 stream ≥ 0.7× kernel vxlan', 'weft vxlan', 'tcp1', 'kernel vxlan', 0.7, 'Gbit/s', 2);
  atLeast('weft vxlan TCP 1 stream ≥ 8× weft baseline', 'weft vxlan', 'tcp1', 'weft baseline', 8, 'Gbit/s', 2);
  atLeast('weft vxlan UDP 64 B (≤1 % loss) ≥ kernel vxlan', 'weft vxlan', 'udp64', 'kernel vxlan', 1, 'kpps', 0);
  atLeast('weft vxlan UDP 1400 B (≤1 % loss) ≥ 0.9× kernel vxlan', 'weft vxlan', 'udp1400', 'kernel vxlan', 0.9, 'kpps', 0);
  const enc = micro?.find((m) => m.op === 'encap' && m.format === 'vxlan' && m.size === 64);
  t.push({
    name: 'micro: vxlan encap 64 B ≥ 20 Mpps on one core',
    measured: enc ? `${enc.mpps.toFixed(1)} Mpps` : 'not measured',
    met: enc ? enc.mpps >= 20 : null,
  });
  const rss = netns?.rows.filter((r) => r.row !== 'kernel vxlan' && r.summary.rss).map((r) => ({ row: r.row, max: r.summary.rss!.max }));
  const worst = rss && rss.length ? rss.reduce((a, b) => (b.max > a.max ? b : a)) : undefined;
  t.push({
    name: 'daemon peak RSS under load ≤ 100 MB',
    measured: worst ? `${worst.max.toFixed(1)} MiB (${(worst.max * 1.048576).toFixed(1)} MB), highest: ${worst.row}` : 'not measured',
    // 100 MB read as 100 MiB would be looser; compare in MB.
    met: worst ? worst.max * 1.048576 <= 100 : null,
  });
  return t;
}

export function targetsText(targets: Target[]): string {
  return targets
    .map((t) => `  ${t.met === null ? '[ ?? ]' : t.met ? '[ met ]' : '[ NOT ]'}  ${t.name}: ${t.measured}`)
    .join('\n');
}

/** Per row: the kernel drop counters that moved during all its UDP searches, largest first. */
export function dropsText(netns: NetnsResult): string {
  const lines: string[] = [];
  for (const r of netns.rows) {
    const sum: Record<string, number> = {};
    for (const rep of r.reps) {
      for (const d of [rep.udp64Drops, rep.udp1400Drops]) {
        for (const [k, v] of Object.entries(d)) if (Number.isFinite(v)) sum[k] = (sum[k] ?? 0) + v;
      }
    }
    const moved = Object.entries(sum)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`);
    lines.push(`  ${r.row.padEnd(13)}  ${moved.length ? moved.join(', ') : 'none'}`);
  }
  return lines.join('\n');
}
