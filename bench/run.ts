// `npm run bench`: the microbenchmarks, then the netns end-to-end rows,
// then one table, the ratios, the targets, and the results as
// bench/results/<timestamp>.json and .svg. See bench/README.md.
//
//   node dist/bench/run.js [--reps N] [--only micro|netns] [--kernel-csum-off]
//
// Everything it starts is tracked and removed on every way out: normal
// end, exception, SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { deleteNamespaces } from '../lab/netns';
import { formatMicroTable, markdownMicro, type MicroResult, runMicro } from './micro';
import { DEFAULT_NETNS_OPTIONS, NETNS_PREFIX, type NetnsResult, runNetns } from './netns';
import { killTracked } from './procs';
import { dropsText, evaluateTargets, markdownTables, netnsTable, ratioTable, ratiosAgainst, targetsText } from './report';
import { ratioChartSvg } from './svg';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results');

/** Idempotent: runs after the netns phase, on signals and at exit. */
function cleanup(): void {
  killTracked();
  try {
    deleteNamespaces(NETNS_PREFIX);
  } catch {
    // `ip` itself failed: nothing more we can do from here
  }
}

function onSignal(sig: NodeJS.Signals): void {
  process.stderr.write(`\nbench: ${sig}, removing namespaces ${NETNS_PREFIX}* and stopping what it started\n`);
  cleanup();
  process.exit(130);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function machine() {
  return {
    nproc: Number(sh('nproc', [])) || os.cpus().length,
    cpu: os.cpus()[0]?.model ?? '',
    kernel: os.release(),
    node: process.version,
    iperf3: sh('iperf3', ['--version']).split('\n')[0],
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    gitCommit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
    gitDirty: sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) !== '',
    // Other work on the machine skews a 2-core run: say how busy it was.
    loadAvgAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const { values } = parseArgs({
    options: {
      reps: { type: 'string' },
      only: { type: 'string' },
      'kernel-csum-off': { type: 'boolean', default: false },
    },
  });
  const reps = values.reps ? Number(values.reps) : DEFAULT_NETNS_OPTIONS.reps;
  if (!Number.isInteger(reps) || reps < 1 || reps > 10) throw new Error('--reps must be 1..10');
  const only = values.only;
  if (only && only !== 'micro' && only !== 'netns') throw new Error('--only must be micro or netns');

  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanup);

  const started = new Date();
  const info = machine();
  console.log(`weft bench — ${started.toISOString()} — ${info.nproc} CPUs (${info.cpu}), Linux ${info.kernel}, node ${info.node}`);
  console.log(`load average at start: ${info.loadAvgAtStart.join(' ')} (anything well above 0 means other work shares the 2 cores)\n`);

  let micro: MicroResult[] | null = null;
  let microSeconds = 0;
  if (only !== 'netns') {
    console.log('microbenchmarks (benchmark.js; native loop, one core, batch of 64):');
    const tm = Date.now();
    micro = await runMicro({ log: (l) => console.log(l) });
    microSeconds = (Date.now() - tm) / 1000;
    console.log(`  (${microSeconds.toFixed(1)} s)\n`);
  }

  let netns: NetnsResult | null = null;
  if (only !== 'micro') {
    if (process.getuid?.() !== 0) {
      console.log('netns end-to-end: skipped (needs root for network namespaces)\n');
    } else {
      console.log(`netns end-to-end (${reps} repetitions per row; * = sender-bound, the path took all the sender could offer):`);
      try {
        netns = await runNetns({ ...DEFAULT_NETNS_OPTIONS, reps, kernelChecksumWorkaround: values['kernel-csum-off'], log: (l) => console.log(l) });
      } finally {
        cleanup();
      }
      console.log(`  (${netns.seconds.toFixed(1)} s)\n`);
    }
  }

  const vsKernel = netns ? ratiosAgainst(netns, 'kernel vxlan') : {};
  const vsBaseline = netns ? ratiosAgainst(netns, 'weft baseline') : {};
  const targets = evaluateTargets(micro, netns);

  console.log('=== microbenchmarks (per core) ===');
  console.log(micro ? formatMicroTable(micro) : '  (not run)');
  console.log('\n=== netns end-to-end: median (min–max) ===');
  if (netns) {
    console.log(netnsTable(netns));
    for (const r of netns.rows) for (const e of r.errors) console.log(`  ${r.row} ${e}: FAILED`);
    if (netns.addonBuilds.length > 1) {
      console.log(`  WARNING: the addon was rebuilt during the run (${netns.addonBuilds.join(', ')}): rows compare different builds`);
    }
    console.log(`  baseline = weft vxlan with ${netns.baselineFlags.join(' ')}${netns.offloadSwitch ? '' : ' (this engine has no --no-offload switch)'}`);
    console.log(`  kernel vxlan: flannel.1 on both nodes, tx-checksum-ip-generic ${netns.options.kernelChecksumWorkaround ? 'off (workaround applied)' : 'on (flannel default)'}`);
    console.log('  CPU = both engine processes over the TCP 1 run (sender + receiver), % of one core; RSS = the larger VmHWM');
    console.log('\n=== ratios (median ÷ median; RTT, CPU, RSS: lower is better) ===');
    console.log(ratioTable(netns, vsKernel, 'kernel vxlan'));
    console.log('');
    console.log(ratioTable(netns, vsBaseline, 'weft baseline'));
    console.log('\n=== where the UDP searches lost packets (kernel drop counters, all probes of a row) ===');
    console.log(dropsText(netns));
  } else {
    console.log('  (not run)');
  }
  console.log('\n=== targets (issue 4) ===');
  console.log(targetsText(targets));

  const wallSeconds = (Date.now() - t0) / 1000;
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  fs.mkdirSync(RESULTS, { recursive: true });
  const jsonPath = path.join(RESULTS, `${stamp}.json`);
  const svgPath = path.join(RESULTS, `${stamp}.svg`);
  const json = {
    started: started.toISOString(),
    wallSeconds,
    machine: info,
    micro: micro && { seconds: microSeconds, results: micro },
    netns,
    ratios: { vsKernel, vsBaseline },
    targets,
    loadAvgAtEnd: os.loadavg().map((x) => Number(x.toFixed(2))),
    markdown: { micro: micro && markdownMicro(micro), netns: netns && markdownTables(netns, vsKernel, vsBaseline) },
  };
  fs.writeFileSync(`${jsonPath}.tmp`, `${JSON.stringify(json, null, 2)}\n`);
  fs.renameSync(`${jsonPath}.tmp`, jsonPath);
  const written = [jsonPath];
  if (netns) {
    const subtitle = `${stamp} · ${info.nproc} CPUs · Linux ${info.kernel} · node ${info.node} · pod1 → pod2 over two network namespaces`;
    fs.writeFileSync(svgPath, ratioChartSvg(vsKernel, 'weft vs the kernel vxlan (flannel.1), median ratios', subtitle, reps));
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
