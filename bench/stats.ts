// Summaries of repetitions: median with the min-max range.

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median of the finite values (mean of the middle two for an even count); null if none. */
export function summarize(xs: Array<number | null>): Summary | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}
