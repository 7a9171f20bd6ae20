// The non-iperf measurements: ping round trips, and a process's CPU time
// and peak RSS from /proc.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

import type { Netns } from '../lab/netns';
import { execIn } from './procs';

export interface PingStats {
  sent: number;
  received: number;
  p50Ms: number;
  p99Ms: number;
  /** Every reply's time=, in order: the raw data. */
  rttsMs: number[];
}

/** Nearest-rank percentile of an unsorted list. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export async function pingRtt(from: Netns, to: string, count: number, intervalS: number): Promise<PingStats> {
  const r = await execIn(from, 'ping', ['-n', '-c', String(count), '-i', String(intervalS), '-W', '1', to], (count * intervalS + 10) * 1000);
  const rttsMs = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const m = /(\d+) packets transmitted/.exec(r.stdout);
  return {
    sent: m ? Number(m[1]) : count,
    received: rttsMs.length,
    p50Ms: percentile(rttsMs, 50),
    p99Ms: percentile(rttsMs, 99),
    rttsMs,
  };
}

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clkTck;
}

/** utime + stime of the whole process (all threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) may contain spaces; the rest follows the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) / ticksPerSecond();
}

/** VmHWM (peak resident set) in MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
