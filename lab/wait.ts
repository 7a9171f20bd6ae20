/**
 * Polls probe until it gives a value (anything but undefined or false) and
 * returns it; throws naming `what` after ms. A probe that throws counts as
 * "not yet" (a daemon that is restarting does not answer).
 */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>, everyMs = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
