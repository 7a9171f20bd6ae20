// CPU accounting for the netns rows: what each data plane costs per GB
// moved, and how busy the machine was meanwhile.
//
// - engine: utime + stime of the engine's packet threads only (weft-io, or
//   weft-tx and weft-rx), from /proc/<pid>/task/*/stat, so Node's own
//   threads in the same process do not count.
// - softirq: the machine's softirq time from /proc/stat. The kernel's vxlan
//   does all its work there (in whatever task's context the packet
//   arrived). With tick accounting and no IRQ_TIME_ACCOUNTING (this
//   kernel), a tick that lands in softirq is also charged to the task it
//   interrupted, so the two overlap: the engine column includes the
//   softirq work its own sends set off in the other namespace.
// - busy: everything /proc/stat counts as not idle, over both CPUs: the
//   data plane, iperf3, the bench, and whatever else the machine runs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clkTck;
}

function statTicks(text: string): number {
  // Field 2 (comm) may contain spaces; the rest follows the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15.
  return Number(rest[11]) + Number(rest[12]);
}

function commOf(text: string): string {
  return text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
}

/** CPU seconds of the threads of pid whose name starts with prefix (all threads when prefix is ''). */
export function threadSeconds(pid: number, prefix = 'weft-'): number {
  let ticks = 0;
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  for (const tid of tasks) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      if (commOf(text).startsWith(prefix)) ticks += statTicks(text);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ticks / ticksPerSecond();
}

/** utime + stime of the whole process (all threads), in seconds. */
export function processSeconds(pid: number): number {
  return statTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) / ticksPerSecond();
}

/** VmHWM (peak resident set) in MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** VmRSS (resident set now) in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface MachineTicks {
  busy: number;
  softirq: number;
  total: number;
}

function machineTicks(): MachineTicks {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v;
  return { busy: user + nice + system + irq + softirq + steal, softirq, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

export interface CpuWindow {
  /** Engine packet threads, seconds, summed over the engines given. */
  engineS: number;
  /** Machine softirq, seconds. */
  softirqS: number;
  /** Machine busy time, seconds (both CPUs). */
  busyS: number;
  /** Busy share of all CPUs over the window, 0..1. */
  busyShare: number;
  wallS: number;
}

/** Starts a window over the given engine pids; the returned function ends it. */
export function cpuWindow(enginePids: number[]): () => CpuWindow {
  const e0 = enginePids.map((p) => threadSeconds(p));
  const m0 = machineTicks();
  const t0 = process.hrtime.bigint();
  return () => {
    const e1 = enginePids.map((p) => threadSeconds(p));
    const m1 = machineTicks();
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const hz = ticksPerSecond();
    const total = m1.total - m0.total;
    return {
      engineS: e1.reduce((a, x, i) => a + (x - e0[i]), 0),
      softirqS: (m1.softirq - m0.softirq) / hz,
      busyS: (m1.busy - m0.busy) / hz,
      busyShare: total > 0 ? (m1.busy - m0.busy) / total : NaN,
      wallS,
    };
  };
}

export const cpuCount = (): number => os.cpus().length;
