// Ping round trips, per reply, with nearest-rank percentiles.
import type { Netns } from '../lab/netns';
import { parsePing } from '../lab/overlay';
import { execIn } from '../lab/procs';

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
  const { sent, rttsMs } = parsePing(r.stdout, count);
  return {
    sent,
    received: rttsMs.length,
    p50Ms: percentile(rttsMs, 50),
    p99Ms: percentile(rttsMs, 99),
    rttsMs,
  };
}

