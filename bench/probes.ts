// Ping round trips, per reply, with nearest-rank percentiles.
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

