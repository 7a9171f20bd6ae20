// `npm run bench`: the microbenchmarks, the netns rows (every data plane,
// paired with the kernel's vxlan in each repetition), the speed options
// one at a time, and the control plane at cluster scale; then the tables,
// the speed targets, and the results as bench/results/<timestamp>.json and
// .svg. See bench/README.md, and --help.
//
// Everything it starts is tracked and removed on every way out: normal
// end, exception, SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { deleteNamespaces } from '../lab/netns';
import { CONTROL_PREFIX, type ControlResult, DEFAULT_CONTROL_OPTIONS, runControl } from './control';
import { NETNS_ROWS, OPTION_ROWS, type RowSpec } from './dataplanes';
import { formatMicroTable, markdownMicro, type MicroResult, runMicro } from './micro';
import { DEFAULT_NETNS_OPTIONS, NETNS_PREFIX, type NetnsResult, runNetns } from './netns';
import { killTracked } from '../lab/procs';
import { type ProfileResult, runProfile } from './profile';
import { controlTables, dropsText, evaluateTargets, markdown, profileTables, ratioTable, type Table, targetsText, text, valuesTable } from './report';
import { pairedMedians, ratioChartSvg } from './svg';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const PHASES = ['micro', 'netns', 'options', 'profile', 'control'] as const;
type Phase = (typeof PHASES)[number];

const HELP = `usage: npm run bench -- [options]

  Runs, in order: micro (the packet core's microbenchmarks), netns (every
  data plane between two lab nodes, each repetition paired with the kernel's
  vxlan), options (weft vxlan with one speed option turned back at a time),
  profile (perf: engine CPU per GB on the tx and rx paths, the engine before the speed work
  against today's), control (peer-table pushes, daemon start-up on etcd at
  5,000 and 20,000 leases, lease -> FIB). Needs root for all but micro.
  Writes bench/results/<timestamp>.json and .svg.

  --only PHASE[,PHASE]  run only these phases (${PHASES.join(', ')})
  --reps N              repetitions per row in netns and options (default ${DEFAULT_NETNS_OPTIONS.reps}, 1..20)
  --rows NAME[,NAME]    only these rows of netns/options (the kernel row is always kept)
  --kernel-csum-off     kernel row with flannel's checksum workaround (see bench/README.md)
  --help                this text

  Rows: ${[...NETNS_ROWS, ...OPTION_ROWS.slice(2)].map((r) => r.name).join(', ')}`;

let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  killTracked();
  for (const p of [NETNS_PREFIX, CONTROL_PREFIX]) {
    try {
      deleteNamespaces(p);
    } catch {
      // not root, or nothing to delete
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  console.error(`\nbench: ${sig}, cleaning up`);
  cleanup();
  process.exit(130);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function machine() {
  return {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    iperf: sh('iperf3', ['--version']).split('\n')[0],
    gitCommit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
    gitDirty: sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) !== '',
    // Other work on the machine skews a 2-core run: say how busy it was.
    loadAvgAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

function pickRows(all: RowSpec[], names: string[] | null): RowSpec[] {
  if (!names) return all;
  return all.filter((r, i) => i === 0 || names.includes(r.name));
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const { values } = parseArgs({
    options: {
      reps: { type: 'string' },
      only: { type: 'string' },
      rows: { type: 'string' },
      'kernel-csum-off': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void console.log(HELP);
  const reps = values.reps ? Number(values.reps) : DEFAULT_NETNS_OPTIONS.reps;
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error('--reps must be 1..20');
  const phases = (values.only ? values.only.split(',') : [...PHASES]) as Phase[];
  for (const p of phases) if (!PHASES.includes(p)) throw new Error(`--only: unknown phase "${p}" (phases: ${PHASES.join(', ')})`);
  const rowNames = values.rows ? values.rows.split(',').map((s) => s.trim()) : null;
  const known = new Set([...NETNS_ROWS, ...OPTION_ROWS].map((r) => r.name));
  for (const n of rowNames ?? []) if (!known.has(n)) throw new Error(`--rows: unknown row "${n}"`);

  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanup);

  const started = new Date();
  const info = machine();
  console.log(`weft bench — ${started.toISOString()} — ${info.nproc} CPUs (${info.cpu}), Linux ${info.kernel}, node ${info.node}`);
  console.log(`load average at start: ${info.loadAvgAtStart.join(' ')} (anything well above 0 means other work shares the ${info.nproc} CPUs)\n`);
  const root = process.getuid?.() === 0;
  const log = (l: string) => console.log(l);

  let micro: MicroResult[] | null = null;
  if (phases.includes('micro')) {
    console.log('micro (benchmark.js; native loop, one core):');
    micro = await runMicro({ log });
    console.log('');
  }
  const netnsPhase = async (name: Phase, rows: RowSpec[], udp: boolean): Promise<NetnsResult | null> => {
    if (!phases.includes(name)) return null;
    if (!root) {
      console.log(`${name}: skipped (needs root for network namespaces)\n`);
      return null;
    }
    console.log(`${name}: ${rows.length} rows × ${reps} repetitions, rotating order (* = sender-bound: the path took all the sender could offer):`);
    try {
      const r = await runNetns({ ...DEFAULT_NETNS_OPTIONS, rows, reps, udp, kernelChecksumWorkaround: values['kernel-csum-off'], log });
      console.log(`  (${r.seconds.toFixed(0)} s)\n`);
      return r;
    } finally {
      killTracked();
    }
  };
  const netns = await netnsPhase('netns', pickRows(NETNS_ROWS, rowNames), true);
  const options = await netnsPhase('options', pickRows(OPTION_ROWS, rowNames), false);
  let profile: ProfileResult | null = null;
  if (phases.includes('profile')) {
    if (!root) {
      console.log('profile: skipped (needs root)\n');
    } else {
      console.log('profile (perf record on both engines over a TCP stream; all options off and today\'s, alternating):');
      try {
        profile = await runProfile({ log });
      } finally {
        killTracked();
      }
      console.log(profile.skipped ? `  skipped: ${profile.skipped}\n` : `  (${profile.seconds.toFixed(0)} s)\n`);
    }
  }
  let control: ControlResult | null = null;
  if (phases.includes('control')) {
    if (!root) {
      console.log('control: skipped (needs root)\n');
    } else {
      console.log('control plane:');
      control = await runControl({ ...DEFAULT_CONTROL_OPTIONS, log });
      console.log(`  (${control.seconds.toFixed(0)} s)\n`);
    }
  }

  const tables: Record<string, Table> = {};
  if (micro) console.log(`=== micro (per core) ===\n${formatMicroTable(micro)}\n`);
  for (const [name, r] of [['netns', netns], ['options', options]] as const) {
    if (!r) continue;
    tables[`${name}.values`] = valuesTable(r);
    tables[`${name}.vsKernel`] = ratioTable(r);
    console.log(`=== ${name}: median (min–max) of ${reps} ===\n${text(tables[`${name}.values`])}`);
    for (const row of r.rows) for (const e of row.errors) console.log(`  ${row.row} ${e}: FAILED`);
    if (r.addonBuilds.length > 1) console.log(`  WARNING: the addon was rebuilt during the run (${r.addonBuilds.join(', ')}): rows compare different builds`);
    console.log(`\n=== ${name}: paired ratios, median (min–max) of the repetitions' ratios; RTT and CPU: lower is better ===\n${text(tables[`${name}.vsKernel`])}\n`);
    if (name === 'options') {
      tables['options.vsDefault'] = ratioTable(r, 'weft vxlan');
      console.log(`=== options: each ÷ weft vxlan (defaults) of the same repetition ===\n${text(tables['options.vsDefault'])}\n`);
    }
    if (name === 'netns') {
      tables['netns.vsWeft'] = ratioTable(r, 'weft vxlan');
      console.log(`=== netns: ÷ weft vxlan of the same repetition (the "again" row is the noise floor) ===\n${text(tables['netns.vsWeft'])}\n`);
      console.log(`=== where the UDP searches lost packets (kernel drop counters, all probes of a row) ===\n${dropsText(r)}\n`);
    }
  }
  if (profile && !profile.skipped) {
    const [sum, top] = profileTables(profile);
    Object.assign(tables, { 'profile.summary': sum, 'profile.top': top });
    console.log(`=== profile: engine CPU seconds per GB moved, by path (mean of the turns) ===\n${text(sum)}\n\n${text(top)}\n`);
  }
  if (control) {
    const [engine, daemon, l2f] = controlTables(control);
    Object.assign(tables, { 'control.engine': engine, 'control.daemon': daemon, ...(l2f ? { 'control.leaseToFib': l2f } : {}) });
    console.log(`=== control plane ===\n${text(engine)}\n\n${text(daemon)}${l2f ? `\n\n${text(l2f)}` : ''}\n`);
    for (const e of control.errors) console.log(`  FAILED: ${e}`);
  }
  const targets = evaluateTargets(netns, control);
  console.log(`=== targets ===\n${targetsText(targets)}`);

  const wallSeconds = (Date.now() - t0) / 1000;
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  fs.mkdirSync(RESULTS, { recursive: true });
  const jsonPath = path.join(RESULTS, `${stamp}.json`);
  const json = {
    started: started.toISOString(),
    wallSeconds,
    machine: info,
    phases,
    micro,
    netns,
    options,
    profile,
    control,
    targets,
    loadAvgAtEnd: os.loadavg().map((x) => Number(x.toFixed(2))),
    markdown: { micro: micro && markdownMicro(micro), ...Object.fromEntries(Object.entries(tables).map(([k, t]) => [k, markdown(t)])) },
  };
  fs.writeFileSync(`${jsonPath}.tmp`, `${JSON.stringify(json, null, 2)}\n`);
  fs.renameSync(`${jsonPath}.tmp`, jsonPath);
  const written = [jsonPath];
  if (netns) {
    const svgPath = path.join(RESULTS, `${stamp}.svg`);
    const subtitle = `${stamp} · ${info.nproc} CPUs · Linux ${info.kernel} · node ${info.node} · pod1 → pod2 over two network namespaces`;
    fs.writeFileSync(svgPath, ratioChartSvg(pairedMedians(netns), 'weft vs the kernel vxlan (flannel.1), paired ratios', subtitle, reps));
    written.push(svgPath);
  }
  console.log(`\nwrote ${written.map((p) => path.relative(process.cwd(), p)).join(' and ')}`);
  console.log(`wall time ${wallSeconds.toFixed(1)} s (${(wallSeconds / 60).toFixed(2)} min)`);
}

main()
  .catch((err) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
