// The lab's one way to wait for something: poll a probe until it gives a
// value, with a bound, saying what was awaited when the bound is hit.

export interface UntilOptions {
  everyMs?: number;
  /** Checked before each try: an Error ends the wait at once (a process that died). */
  fatal?: () => Error | undefined;
  /** More to say when the time is up (a log tail). */
  detail?: () => string;
}

/**
 * Polls probe until it gives a value (anything but undefined or false) and
 * returns it; throws naming `what` after ms. A probe that throws counts as
 * "not yet" (a daemon that is restarting does not answer).
 */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>, opts: UntilOptions | number = {}): Promise<T> {
  const o = typeof opts === 'number' ? { everyMs: opts } : opts;
  const t0 = Date.now();
  for (;;) {
    const dead = o.fatal?.();
    if (dead) throw dead;
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms${o.detail ? `:\n${o.detail()}` : ''}`);
    await sleepMs(o.everyMs ?? 100);
  }
}

export function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
