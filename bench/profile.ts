// The profile phase (`npm run bench -- --only profile`): where the engine's
// CPU goes on the tx and the rx path, for the engine before the speed work
// and as it is now, in the same run, on the same lab.
//
// Each turn runs one TCP stream pod1 -> pod2 through weft vxlan with
// `perf record -g` (cpu-clock: a VM has no PMU) on both engine processes.
// Every sample is put on the path its call stack is in (TxPath::drain or
// RxPath::drain; anything else: poll and wake-ups) and charged to the
// function it was in (the leaf: kernel or weft). Samples / rate / GB moved
// is CPU seconds per GB, per path, which is comparable across turns even
// when the throughput is not. The two configurations alternate, twice.
//
// Caveat: without a PMU, a sample taken while interrupts are off lands
// where they come back on, so kernel leaves like _raw_spin_unlock_irqrestore
// and finish_task_switch stand for work just before them.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { Lab } from '../lab/topology';
import { type DataPlane, ALL_OPTIONS_OFF, OPTION_ROWS, type RowSpec, setPodMtu, setupRow } from './dataplanes';
import { IperfServer, tcpRun } from '../lab/iperf';
import { NETNS_PREFIX } from './netns';
import { pingRtt } from './probes';
import { track } from '../lab/procs';
import { sleepMs as sleep } from '../lab/wait';

const RATE = 999;
const TURNS = 2;

export interface PathProfile {
  /** CPU seconds per GB moved on this path. */
  sPerGB: number;
  samples: number;
  /** The leaf functions with the most samples: name, share of this path's samples. */
  top: Array<{ fn: string; share: number }>;
}

export interface ProfileTurn {
  config: 'all options off' | 'now';
  args: string[];
  gbps: number;
  gb: number;
  paths: Record<'tx' | 'rx' | 'other', PathProfile>;
}

export interface ProfileResult {
  turns: ProfileTurn[];
  /** Per configuration, the turns' mean CPU s/GB per path. */
  summary: Record<string, Record<'tx' | 'rx' | 'other', number>>;
  skipped?: string;
  seconds: number;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 512 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}: ${(stderr || err.message).trim().split('\n')[0]}`));
      else resolve(stdout);
    });
  });
}

/** perf script's samples: each a header line, then one frame per line, then a blank line. */
export function classify(script: string, gb: number): Record<'tx' | 'rx' | 'other', PathProfile> {
  const counts = { tx: new Map<string, number>(), rx: new Map<string, number>(), other: new Map<string, number>() };
  for (const block of script.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim());
    if (lines.length < 2) continue;
    // "\t ffffffff81234567 _copy_from_iter+0x5 ([kernel.kallsyms])" -> "_copy_from_iter"
    const frames = lines.slice(1).map((l) => l.trim().split(/\s+/).slice(1).join(' ').replace(/\+0x[0-9a-f]+/, '').replace(/ \(.*\)$/, ''));
    const where = frames.some((f) => f.includes('TxPath::drain')) ? 'tx' : frames.some((f) => f.includes('RxPath::drain')) ? 'rx' : 'other';
    const leaf = frames[0] || '?';
    counts[where].set(leaf, (counts[where].get(leaf) ?? 0) + 1);
  }
  const out = {} as Record<'tx' | 'rx' | 'other', PathProfile>;
  for (const k of ['tx', 'rx', 'other'] as const) {
    const total = [...counts[k].values()].reduce((a, b) => a + b, 0);
    const top = [...counts[k].entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([fn, n]) => ({ fn, share: total ? n / total : 0 }));
    out[k] = { sPerGB: gb > 0 ? total / RATE / gb : NaN, samples: total, top };
  }
  return out;
}

async function profileTurn(lab: Lab, row: RowSpec, config: ProfileTurn['config'], dir: string, seconds: number): Promise<ProfileTurn> {
  const [n1, n2] = lab.nodes;
  setPodMtu(lab, row.mtu);
  let dp: DataPlane | null = null;
  const server = new IperfServer(n2.pod, n2.podIp);
  const data = path.join(dir, `${config.replace(/\W+/g, '-')}.data`);
  try {
    dp = await setupRow(lab, row, { dir, kernelChecksumWorkaround: false });
    await pingRtt(n1.pod, n2.podIp, 5, 0.05);
    await server.start();
    const perf = track(spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', String(RATE), '-g', '-o', data, '-p', dp.pids.join(',')], { stdio: 'ignore' }));
    const exited = new Promise((r) => perf.once('exit', r));
    await sleep(500);
    const tcp = await tcpRun(server, n1.pod, seconds, 1);
    perf.kill('SIGINT');
    await exited;
    const script = await run('perf', ['script', '-i', data, '-F', 'comm,ip,sym'], 120_000);
    const gb = tcp.bytes / 1e9;
    return { config, args: row.args ?? [], gbps: tcp.gbps, gb, paths: classify(script, gb) };
  } finally {
    server.stop();
    if (dp) await dp.teardown();
    fs.rmSync(data, { force: true });
  }
}

export async function runProfile(o: { log: (l: string) => void; seconds?: number }): Promise<ProfileResult> {
  const t0 = Date.now();
  try {
    await run('perf', ['--version'], 10_000);
  } catch (err) {
    return { turns: [], summary: {}, skipped: `perf is not usable here (${(err as Error).message})`, seconds: 0 };
  }
  const now = OPTION_ROWS.find((r) => r.name === 'weft vxlan')!;
  const before: RowSpec = { ...now, name: 'weft vxlan, all options off', args: ALL_OPTIONS_OFF };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${NETNS_PREFIX}prof-`));
  const lab = Lab.create(`${NETNS_PREFIX}pf`, 2, 1450);
  const turns: ProfileTurn[] = [];
  try {
    for (let i = 0; i < TURNS; i++) {
      for (const [row, config] of [[before, 'all options off'], [now, 'now']] as const) {
        const t = await profileTurn(lab, row, config, dir, o.seconds ?? 4);
        turns.push(t);
        const p = (k: 'tx' | 'rx' | 'other') => `${k} ${t.paths[k].sPerGB.toFixed(3)}`;
        o.log(`  ${config.padEnd(16)} tcp1 ${t.gbps.toFixed(2)} Gbit/s; engine CPU s/GB: ${p('tx')}, ${p('rx')}, ${p('other')}`);
      }
    }
  } finally {
    lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const summary: ProfileResult['summary'] = {};
  for (const c of ['all options off', 'now']) {
    const ts = turns.filter((t) => t.config === c);
    const mean = (k: 'tx' | 'rx' | 'other') => ts.reduce((a, t) => a + t.paths[k].sPerGB, 0) / ts.length;
    summary[c] = { tx: mean('tx'), rx: mean('rx'), other: mean('other') };
  }
  return { turns, summary, seconds: (Date.now() - t0) / 1000 };
}
