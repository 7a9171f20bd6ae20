// The embedded lease store: one SQLite file shared by every weft daemon on a
// host (one per network namespace, each its own process), with etcd's lease
// semantics so the daemon cannot tell the two stores apart.
//
// Design notes.
// - Keys and values are flannel's: the subnet key text ("10.5.52.0-24") and
//   the exact lease JSON, so a dump of this file reads like `etcdctl get`.
// - Concurrency between processes is SQLite's: WAL (readers never block the
//   one writer), a busy timeout, and every write in BEGIN IMMEDIATE, which
//   takes the write lock before reading, so "create only if absent" is a
//   check-and-insert no other process can interleave with.
// - Expiry is lazy, as there is no server to run timers: an expired row is
//   invisible to every read, and whoever notices it first (any read, write
//   or watch poll, in any process) deletes it and logs a 'delete' change, so
//   watchers see it lapse as they would see an etcd lease expire.
// - Every put and delete appends to `changes`, whose AUTOINCREMENT key is the
//   store's revision: monotonic, never reused, and committed in order because
//   writers are serialized. A watch polls for changes after its cursor. The
//   log is trimmed to the last `changeRetention` rows; `meta.compacted` is the
//   highest trimmed revision, and a cursor below it (or beyond the newest
//   revision: the file was replaced) gets a snapshot, as etcd's compaction does.
// - better-sqlite3 is synchronous; each statement is small, so the async
//   interface just wraps it (a write may block the event loop for at most
//   the busy timeout while another process holds the lock).
import * as fs from 'node:fs';
import * as path from 'node:path';

import Database from 'better-sqlite3';

import type { Cidr4 } from '../cidr';
import type { Logger } from '../log';
import { parseSubnetKey, subnetKey } from '../subnet/key';
import { decodeLeaseAttrs, encodeLeaseAttrs } from './lease-json';
import { ConfigNotFoundError, type Lease, type LeaseAttrs, type LeaseEvent, type LeaseStore, SubnetTakenError, type WatchBatch } from './types';
import { sleep } from '../sleep';

export const DEFAULT_SQLITE_PATH = '/var/lib/weft/leases.db';

const SCHEMA_VERSION = 1;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** Changes read per poll; a longer backlog is read in several batches. */
const PAGE = 1000;

export interface SqliteStoreOptions {
  /** The database file; its directory is created. Default /var/lib/weft/leases.db. */
  path?: string;
  log: Logger;
  /** The network config text (e.g. --net-config-path's content) to store as <config>. */
  networkConfig?: string;
  /** How long a write waits for another process's lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** How often a watch polls the change log. Default 200 ms. */
  pollIntervalMs?: number;
  /** Changes kept in the log for watchers that fall behind. Default 10000. */
  changeRetention?: number;
}

interface LeaseRow {
  key: string;
  value: string;
  expires_at: number | null;
}

interface ChangeRow {
  revision: number;
  key: string;
  op: 'put' | 'delete';
  value: string | null;
  expires_at: number | null;
}

type Poll = { kind: 'snapshot'; leases: Lease[]; cursor: number } | { kind: 'changes'; rows: ChangeRow[] };

export class SqliteStore implements LeaseStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly log: Logger;
  private readonly pollIntervalMs: number;
  private readonly changeRetention: number;
  private readonly closing = new AbortController();
  private readonly stmt: ReturnType<typeof prepare>;

  constructor(opts: SqliteStoreOptions) {
    this.path = opts.path ?? DEFAULT_SQLITE_PATH;
    this.log = opts.log;
    this.pollIntervalMs = opts.pollIntervalMs ?? 200;
    this.changeRetention = opts.changeRetention ?? 10_000;
    try {
      fs.mkdirSync(path.dirname(this.path), { recursive: true });
      this.db = new Database(this.path, { timeout: opts.busyTimeoutMs ?? 5_000 });
      this.db.pragma('journal_mode = WAL');
      // Leases are few and rarely written: pay for durability across power loss.
      this.db.pragma('synchronous = FULL');
      this.db.transaction(() => migrate(this.db)).immediate();
    } catch (err) {
      throw new Error(`cannot open the lease store ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    this.stmt = prepare(this.db);
    if (opts.networkConfig !== undefined) this.seedConfig(opts.networkConfig);
  }

  async getNetworkConfig(): Promise<string> {
    const row = this.stmt.getConfig.get() as { value: string } | undefined;
    if (!row) {
      throw new ConfigNotFoundError(`network config not found in the lease store ${this.path}: pass --net-config-path to seed it`);
    }
    return row.value;
  }

  async createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const key = subnetKey(subnet);
    const value = encodeLeaseAttrs(attrs);
    return this.write(() => {
      const now = Date.now();
      this.reapLocked(now);
      if (this.stmt.getLease.get(key, now)) throw new SubnetTakenError(subnet);
      return this.putLocked(key, value, expiresAt(now, ttlSeconds));
    });
  }

  async updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const value = encodeLeaseAttrs(attrs);
    return this.putRaw(subnetKey(subnet), value, ttlSeconds);
  }

  async deleteLease(subnet: Cidr4): Promise<void> {
    this.deleteRaw(subnetKey(subnet));
  }

  async getLease(subnet: Cidr4): Promise<Lease | null> {
    this.reap();
    const row = this.stmt.getLease.get(subnetKey(subnet), Date.now()) as LeaseRow | undefined;
    return row ? this.leaseOf(row) : null;
  }

  async listLeases(): Promise<{ leases: Lease[]; cursor: string }> {
    this.reap();
    const { leases, cursor } = this.db.transaction(() => this.snapshotLocked(Date.now())).deferred();
    return { leases, cursor: String(cursor) };
  }

  async *watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch> {
    const abort = AbortSignal.any([signal, this.closing.signal]);
    if (!/^\d+$/.test(cursor)) throw new Error(`invalid lease store cursor ${JSON.stringify(cursor)}: expected a revision`);
    let rev = Number(cursor);
    let backoffMs = BACKOFF_MIN_MS;
    let failingSince: number | null = null;

    while (!abort.aborted) {
      let more = false;
      try {
        this.reap();
        const poll = this.db.transaction((): Poll => this.pollLocked(rev)).deferred();
        if (failingSince !== null) this.log.info({ path: this.path, outageMs: Date.now() - failingSince }, 'lease store readable again');
        failingSince = null;
        backoffMs = BACKOFF_MIN_MS;
        if (poll.kind === 'snapshot') {
          rev = poll.cursor;
          yield { kind: 'snapshot', leases: poll.leases, cursor: String(rev) };
        } else if (poll.rows.length > 0) {
          const events = this.eventsOf(poll.rows);
          rev = poll.rows[poll.rows.length - 1].revision;
          more = poll.rows.length === PAGE;
          if (events.length > 0) yield { kind: 'events', events, cursor: String(rev) };
        }
      } catch (err) {
        if (abort.aborted) break;
        if (failingSince === null) {
          failingSince = Date.now();
          this.log.warn({ path: this.path, err: (err as Error).message }, 'cannot read the lease store; retrying with backoff');
        }
        await sleep(backoffMs, abort);
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
        continue;
      }
      if (!more) await sleep(this.pollIntervalMs, abort);
    }
  }

  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    this.db.close();
  }

  // --- tooling: the embedded store's `etcdctl` ------------------------------

  /** Writes any key and value text as given (a lease by hand, or a malformed one for a test). */
  putRaw(key: string, value: string, ttlSeconds: number): Date | null {
    return this.write(() => {
      const now = Date.now();
      this.reapLocked(now);
      return this.putLocked(key, value, expiresAt(now, ttlSeconds));
    });
  }

  /** The stored text of a key, if present and not expired. */
  getRaw(key: string): { value: string; expiration: Date | null } | null {
    const row = this.stmt.getLease.get(key, Date.now()) as LeaseRow | undefined;
    return row ? { value: row.value, expiration: row.expires_at === null ? null : new Date(row.expires_at) } : null;
  }

  deleteRaw(key: string): void {
    this.write(() => {
      const now = Date.now();
      this.reapLocked(now);
      if (this.stmt.deleteLease.run(key).changes > 0) this.logChange(key, 'delete', null, null);
    });
  }

  /** Trims the change log to its newest keepLast rows; returns the highest revision trimmed. */
  compactChanges(keepLast = 0): number {
    return this.write(() => this.trimLocked(keepLast));
  }

  // --- internals; "Locked" = the caller is inside a transaction -------------

  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof SubnetTakenError) throw err;
      const e = err as Error & { code?: string };
      throw new Error(`lease store ${this.path}: ${e.code ? `${e.code}: ` : ''}${e.message}`, { cause: e });
    }
  }

  private seedConfig(text: string): void {
    this.write(() => {
      const row = this.stmt.getConfig.get() as { value: string } | undefined;
      if (row?.value !== text) this.stmt.putConfig.run(text);
    });
  }

  private putLocked(key: string, value: string, expires: number | null): Date | null {
    const revision = this.logChange(key, 'put', value, expires);
    this.stmt.putLease.run(key, value, expires, revision);
    return expires === null ? null : new Date(expires);
  }

  private logChange(key: string, op: 'put' | 'delete', value: string | null, expires: number | null): number {
    const revision = Number(this.stmt.addChange.run(key, op, value, expires).lastInsertRowid);
    // Trim now and then rather than on every write.
    if (revision % 100 === 0) this.trimLocked(this.changeRetention);
    return revision;
  }

  private trimLocked(keepLast: number): number {
    const upTo = this.currentRevisionLocked() - keepLast;
    const compacted = this.compactedLocked();
    if (upTo <= compacted) return compacted;
    this.stmt.trimChanges.run(upTo);
    this.stmt.setCompacted.run(upTo);
    return upTo;
  }

  /** Deletes expired rows (if any, in a write transaction) so their deletes reach watchers. */
  private reap(): void {
    if (this.stmt.anyExpired.get(Date.now())) this.write(() => this.reapLocked(Date.now()));
  }

  private reapLocked(now: number): void {
    for (const row of this.stmt.expired.all(now) as LeaseRow[]) {
      this.stmt.deleteLease.run(row.key);
      this.logChange(row.key, 'delete', null, null);
      this.log.debug({ key: row.key }, 'lease expired');
    }
  }

  private currentRevisionLocked(): number {
    const row = this.stmt.currentRevision.get() as { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  private compactedLocked(): number {
    const row = this.stmt.getCompacted.get() as { value: number } | undefined;
    return row?.value ?? 0;
  }

  private snapshotLocked(now: number): { leases: Lease[]; cursor: number } {
    const leases: Lease[] = [];
    for (const row of this.stmt.listLeases.all(now) as LeaseRow[]) {
      const lease = this.leaseOf(row);
      if (lease) leases.push(lease);
    }
    return { leases, cursor: this.currentRevisionLocked() };
  }

  private pollLocked(rev: number): Poll {
    if (rev < this.compactedLocked() || rev > this.currentRevisionLocked()) {
      this.log.info({ path: this.path, cursor: rev, compacted: this.compactedLocked(), current: this.currentRevisionLocked() }, 'lease store change log does not reach the watch cursor; listing leases again');
      return { kind: 'snapshot', ...this.snapshotLocked(Date.now()) };
    }
    return { kind: 'changes', rows: this.stmt.changesSince.all(rev, PAGE) as ChangeRow[] };
  }

  private eventsOf(rows: ChangeRow[]): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const row of rows) {
      if (row.op === 'delete') {
        const subnet = this.subnetOf(row.key);
        if (subnet) events.push({ type: 'removed', subnet });
      } else {
        const lease = this.leaseOf({ key: row.key, value: row.value ?? '', expires_at: row.expires_at });
        if (lease) events.push({ type: 'added', lease });
      }
    }
    return events;
  }

  /** A row as a Lease, or null with a warning naming the key. */
  private leaseOf(row: LeaseRow): Lease | null {
    const subnet = this.subnetOf(row.key);
    if (!subnet) return null;
    try {
      const attrs = decodeLeaseAttrs(row.value);
      return { subnet, attrs, expiration: row.expires_at === null ? null : new Date(row.expires_at) };
    } catch (err) {
      this.log.warn({ key: row.key, err: (err as Error).message }, 'skipping malformed lease');
      return null;
    }
  }

  private subnetOf(key: string): Cidr4 | null {
    const subnet = key.includes('/') ? null : parseSubnetKey(key);
    if (!subnet) this.log.warn({ key }, 'skipping key that does not name a subnet');
    return subnet;
  }
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version !== 0) throw new Error(`unknown lease store schema version ${version} (this weft knows ${SCHEMA_VERSION})`);
  db.exec(`
    CREATE TABLE config (
      id    INTEGER PRIMARY KEY CHECK (id = 0),
      value TEXT NOT NULL                      -- net-conf.json text, as <prefix>/config in etcd
    );
    CREATE TABLE leases (
      key        TEXT PRIMARY KEY,             -- flannel's subnet key: 10.5.52.0-24
      value      TEXT NOT NULL,                -- flannel's lease JSON, byte for byte
      expires_at INTEGER,                      -- ms since the epoch; NULL = reservation
      revision   INTEGER NOT NULL              -- changes.revision of the last put
    ) WITHOUT ROWID;
    CREATE INDEX leases_expiry ON leases (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE changes (
      revision   INTEGER PRIMARY KEY AUTOINCREMENT,
      key        TEXT NOT NULL,
      op         TEXT NOT NULL CHECK (op IN ('put', 'delete')),
      value      TEXT,
      expires_at INTEGER
    );
    CREATE TABLE meta (
      name  TEXT PRIMARY KEY,                  -- 'compacted': highest revision trimmed from changes
      value INTEGER NOT NULL
    ) WITHOUT ROWID;
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

function prepare(db: Database.Database) {
  return {
    getConfig: db.prepare('SELECT value FROM config WHERE id = 0'),
    putConfig: db.prepare('INSERT INTO config (id, value) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET value = excluded.value'),
    getLease: db.prepare('SELECT key, value, expires_at FROM leases WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)'),
    listLeases: db.prepare('SELECT key, value, expires_at FROM leases WHERE expires_at IS NULL OR expires_at > ? ORDER BY key'),
    putLease: db.prepare(
      'INSERT INTO leases (key, value, expires_at, revision) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, revision = excluded.revision',
    ),
    deleteLease: db.prepare('DELETE FROM leases WHERE key = ?'),
    anyExpired: db.prepare('SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1'),
    expired: db.prepare('SELECT key, value, expires_at FROM leases WHERE expires_at <= ? ORDER BY key'),
    addChange: db.prepare('INSERT INTO changes (key, op, value, expires_at) VALUES (?, ?, ?, ?)'),
    changesSince: db.prepare('SELECT revision, key, op, value, expires_at FROM changes WHERE revision > ? ORDER BY revision LIMIT ?'),
    trimChanges: db.prepare('DELETE FROM changes WHERE revision <= ?'),
    currentRevision: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'changes'"),
    getCompacted: db.prepare("SELECT value FROM meta WHERE name = 'compacted'"),
    setCompacted: db.prepare("INSERT INTO meta (name, value) VALUES ('compacted', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
  };
}

function expiresAt(now: number, ttlSeconds: number): number | null {
  return ttlSeconds > 0 ? now + ttlSeconds * 1000 : null;
}

