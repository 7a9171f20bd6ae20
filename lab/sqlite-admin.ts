// The embedded store's `etcdctl`, for tests and by-hand experiments: raw
// keys and values (a malformed lease, a hand-written one), reading one back,
// trimming the change log, and making a lease lapse now. Kept out of the
// product's SqliteStore so the daemon cannot call any of it.
import { SqliteStore } from '../src/store/sqlite';
import { hostClock } from '../src/store/sqlite';

export class SqliteAdmin extends SqliteStore {
  /** Writes any key and value text as given; ttlSeconds 0 = no TTL. */
  putRaw(key: string, value: string, ttlSeconds: number): Date | null {
    return this.write(() => this.putLocked(key, value, ttlSeconds, { boot: hostClock.bootId, bootNow: hostClock.bootNowMs(), wallNow: Date.now() }));
  }

  /** The stored text of a key, if present and not lapsed. */
  getRaw(key: string): { value: string; expiration: Date | null } | null {
    const row = this.stmt.getLease.get({ key, boot: hostClock.bootId, bootNow: hostClock.bootNowMs(), wallNow: Date.now() }) as
      | { value: string; expires_at: number | null }
      | undefined;
    return row ? { value: row.value, expiration: row.expires_at === null ? null : new Date(row.expires_at) } : null;
  }

  deleteRaw(key: string): void {
    this.deleteKey(key);
  }

  /** Trims the change log to its newest keepLast rows; returns the highest revision trimmed. */
  compactChanges(keepLast = 0): number {
    return this.write(() => this.trimLocked(keepLast));
  }

  /** Makes a lease's TTL run out now, as a long pause would (on both clocks). */
  lapse(key: string): void {
    this.db.prepare('UPDATE leases SET expires_at = 1, expires_boot = 1 WHERE key = ?').run(key);
  }

  /** Moves every wall-clock expiry to the past, as a forward wall-clock step would. */
  stepWallClock(): void {
    this.db.prepare('UPDATE leases SET expires_at = ? WHERE expires_at IS NOT NULL').run(Date.now() - 1000);
  }
}
