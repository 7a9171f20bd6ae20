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
//   or watch poll, in any process) deletes it and logs a 'delete' change
//   marked `expired`, so watchers see it lapse as they would see an etcd
//   lease expire, and can tell a lapse from an operator's delete.
// - Expiry is measured on the host's boot clock (CLOCK_BOOTTIME, read from
//   /proc/uptime), not the wall clock: every daemon sharing the file runs on
//   this one host, and a wall-clock step (NTP, a bad RTC) must not lapse
//   every lease at once. A row written during another boot (the file
//   outlived a reboot) falls back to its wall-clock expiry.
// - Every put and delete appends to `changes`, whose AUTOINCREMENT key is the
//   store's revision: monotonic, never reused, and committed in order because
//   writers are serialized. A watch polls for changes after its cursor. The
//   log is trimmed to the last `changeRetention` rows; `meta.compacted` is the
//   highest trimmed revision, and a cursor below it (or beyond the newest
//   revision: the file was replaced) gets a snapshot, as etcd's compaction does.
// - The file and its -wal/-shm are 0600 (they hold every node's address and
//   VtepMAC and the network config); a directory made for it is 0755.
// - better-sqlite3 is synchronous; each statement is small, so the async
//   interface just wraps it (a write may block the event loop for at most
//   the busy timeout while another process holds the lock).
import * as fs from 'node:fs';
import * as path from 'node:path';

import type Database from 'better-sqlite3';

import type { Cidr4 } from '../cidr';
import { DEFAULT_STORE_PATH } from '../defaults';
import { chmodIfExists, ensureDir, ensureFileMode } from '../fsutil';
import type { Logger } from '../log';
import { sleep } from '../sleep';
import { subnetKey } from '../subnet/key';
import { leaseOfEntry, Outage, subnetOfKey, WarnedKeys } from './common';
import { encodeLeaseValue } from './lease-json';
import { type Lease, type LeaseAttrs, type LeaseEvent, type LeaseStore, SubnetTakenError, type WatchBatch } from './types';

const SCHEMA_VERSION = 2;
/** Changes read per poll; a longer backlog is read in several batches. */
const PAGE = 1000;

export interface SqliteStoreOptions {
  /** The database file; its directory is created. Default /var/lib/weft/leases.db. */
  path?: string;
  log: Logger;
  /** How long a write waits for another process's lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** How often a watch polls the change log. Default 200 ms. */
  pollIntervalMs?: number;
  /** Changes kept in the log for watchers that fall behind. Default 10000. */
  changeRetention?: number;
}

export interface LeaseRow {
  key: string;
  value: string;
  expires_at: number | null;
  expires_boot: number | null;
  boot_id: string | null;
}

interface ChangeRow extends LeaseRow {
  revision: number;
  op: 'put' | 'delete';
  cause: 'expired' | null;
}

type Poll = { kind: 'snapshot'; leases: Lease[]; cursor: number } | { kind: 'changes'; rows: ChangeRow[] };

/** This host's boot, and its boot clock in ms: the basis of every expiry. */
export const hostClock = {
  bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
  bootNowMs(): number {
    return Math.round(Number.parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1000);
  },
};

/** The named parameters every liveness query takes. */
function clockParams(): { boot: string; bootNow: number; wallNow: number } {
  return { boot: hostClock.bootId, bootNow: hostClock.bootNowMs(), wallNow: Date.now() };
}

export class SqliteStore implements LeaseStore {
  readonly path: string;
  readonly description: string;
  protected readonly db: Database.Database;
  protected readonly log: Logger;
  private readonly pollIntervalMs: number;
  private readonly changeRetention: number;
  private readonly closing = new AbortController();
  private readonly warned = new WarnedKeys();
  protected readonly stmt: ReturnType<typeof prepare>;

  constructor(opts: SqliteStoreOptions) {
    this.path = opts.path ?? DEFAULT_STORE_PATH;
    this.description = `embedded store ${this.path}`;
    this.log = opts.log;
    this.pollIntervalMs = opts.pollIntervalMs ?? 200;
    this.changeRetention = opts.changeRetention ?? 10_000;
    try {
      ensureDir(path.dirname(this.path));
      ensureFileMode(this.path, 0o600);
      for (const side of ['-wal', '-shm']) chmodIfExists(this.path + side, 0o600);
      // Loaded here, not at import: a daemon on etcd never needs SQLite's 4 MB.
      const SQLite = require('better-sqlite3') as typeof Database;
      this.db = new SQLite(this.path, { timeout: opts.busyTimeoutMs ?? 5_000 });
      this.db.pragma('journal_mode = WAL');
      // Leases are few and rarely written: pay for durability across power loss.
      this.db.pragma('synchronous = FULL');
      this.db.transaction(() => migrate(this.db)).immediate();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EACCES' || e.code === 'EROFS' ? `${e.code}: no permission to write it (read-only?)` : e.message;
      throw new Error(`cannot open the lease store ${this.path}: ${why}`, { cause: err });
    }
    this.stmt = prepare(this.db);
  }

  async createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const key = subnetKey(subnet);
    const value = encodeLeaseValue(attrs);
    return this.write(() => {
      const clock = clockParams();
      this.reapLocked(clock);
      if (this.stmt.getLease.get({ key, ...clock })) throw new SubnetTakenError(subnet);
      return this.putLocked(key, value, ttlSeconds, clock);
    });
  }

  async updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const key = subnetKey(subnet);
    const value = encodeLeaseValue(attrs);
    return this.write(() => {
      const clock = clockParams();
      this.reapLocked(clock);
      return this.putLocked(key, value, ttlSeconds, clock);
    });
  }

  async deleteLease(subnet: Cidr4): Promise<void> {
    this.deleteKey(subnetKey(subnet));
  }

  /** Expirations come with the rows here: `expirations` changes nothing. */
  async listLeases(_opts?: { expirations?: boolean }): Promise<{ leases: Lease[]; cursor: string }> {
    this.reap();
    const { leases, cursor } = this.db.transaction(() => this.snapshotLocked()).deferred();
    return { leases, cursor: String(cursor) };
  }

  async *watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch> {
    const abort = AbortSignal.any([signal, this.closing.signal]);
    if (!/^\d+$/.test(cursor)) throw new Error(`invalid lease store cursor ${JSON.stringify(cursor)}: expected a revision`);
    let rev = Number(cursor);
    const outage = new Outage(this.log, 'lease store', { path: this.path });

    while (!abort.aborted) {
      let more = false;
      try {
        this.reap();
        const poll = this.db.transaction((): Poll => this.pollLocked(rev)).deferred();
        outage.recovered();
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
        await outage.failed(err, abort);
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

  // --- internals; "Locked" = the caller is inside a transaction -------------

  protected write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof SubnetTakenError) throw err;
      const e = err as Error & { code?: string };
      throw new Error(`lease store ${this.path}: ${e.code ? `${e.code}: ` : ''}${e.message}`, { cause: e });
    }
  }

  protected deleteKey(key: string): void {
    this.write(() => {
      this.reapLocked(clockParams());
      if (this.stmt.deleteLease.run(key).changes > 0) this.logChange(key, 'delete', null, null);
    });
  }

  protected putLocked(key: string, value: string, ttlSeconds: number, clock: ReturnType<typeof clockParams>): Date | null {
    const row: LeaseRow =
      ttlSeconds > 0
        ? { key, value, expires_at: clock.wallNow + ttlSeconds * 1000, expires_boot: clock.bootNow + ttlSeconds * 1000, boot_id: clock.boot }
        : { key, value, expires_at: null, expires_boot: null, boot_id: null };
    const revision = this.logChange(key, 'put', row, null);
    this.stmt.putLease.run({ ...row, revision });
    return row.expires_at === null ? null : new Date(row.expires_at);
  }

  private logChange(key: string, op: 'put' | 'delete', row: LeaseRow | null, cause: 'expired' | null): number {
    const revision = Number(
      this.stmt.addChange.run({
        key,
        op,
        value: row?.value ?? null,
        expires_at: row?.expires_at ?? null,
        expires_boot: row?.expires_boot ?? null,
        boot_id: row?.boot_id ?? null,
        cause,
      }).lastInsertRowid,
    );
    // Trim now and then rather than on every write.
    if (revision % 100 === 0) this.trimLocked(this.changeRetention);
    return revision;
  }

  protected trimLocked(keepLast: number): number {
    const upTo = this.currentRevisionLocked() - keepLast;
    const compacted = this.compactedLocked();
    if (upTo <= compacted) return compacted;
    this.stmt.trimChanges.run(upTo);
    this.stmt.setCompacted.run(upTo);
    return upTo;
  }

  /** Deletes expired rows (if any, in a write transaction) so their lapse reaches watchers. */
  private reap(): void {
    if (this.stmt.anyExpired.get(clockParams())) this.write(() => this.reapLocked(clockParams()));
  }

  private reapLocked(clock: ReturnType<typeof clockParams>): void {
    for (const row of this.stmt.expired.all(clock) as LeaseRow[]) {
      this.stmt.deleteLease.run(row.key);
      this.logChange(row.key, 'delete', null, 'expired');
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

  private snapshotLocked(): { leases: Lease[]; cursor: number } {
    const leases: Lease[] = [];
    for (const row of this.stmt.listLeases.all(clockParams()) as LeaseRow[]) {
      const lease = this.leaseOf(row);
      if (lease) leases.push(lease);
    }
    return { leases, cursor: this.currentRevisionLocked() };
  }

  private pollLocked(rev: number): Poll {
    const compacted = this.compactedLocked();
    const current = this.currentRevisionLocked();
    if (rev < compacted || rev > current) {
      this.log.info({ path: this.path, cursor: rev, compacted, current }, 'lease store change log does not reach the watch cursor; listing leases again');
      return { kind: 'snapshot', ...this.snapshotLocked() };
    }
    return { kind: 'changes', rows: this.stmt.changesSince.all(rev, PAGE) as ChangeRow[] };
  }

  private eventsOf(rows: ChangeRow[]): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const row of rows) {
      if (row.op === 'delete') {
        const subnet = subnetOfKey(row.key, row.key, this.log, this.warned);
        if (subnet) events.push({ type: 'removed', subnet, cause: row.cause === 'expired' ? 'expired' : 'deleted' });
      } else {
        const lease = this.leaseOf(row);
        if (lease) events.push({ type: 'added', lease });
      }
    }
    return events;
  }

  /** A row as a Lease, or null with a warning naming the key. */
  protected leaseOf(row: LeaseRow): Lease | null {
    const subnet = subnetOfKey(row.key, row.key, this.log, this.warned);
    return subnet ? leaseOfEntry(row.key, subnet, row.value ?? '', expirationOf(row), this.log, this.warned) : null;
  }
}

/** A row's expiry as a wall-clock Date, reckoned on the boot clock when the row is from this boot. */
function expirationOf(row: LeaseRow): Date | null {
  if (row.expires_at === null) return null;
  if (row.boot_id === hostClock.bootId && row.expires_boot !== null) {
    return new Date(Date.now() + (row.expires_boot - hostClock.bootNowMs()));
  }
  return new Date(row.expires_at);
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version === 0) {
    db.exec(`
      CREATE TABLE config (
        id    INTEGER PRIMARY KEY CHECK (id = 0),
        value TEXT NOT NULL                      -- unused since schema 2: each daemon reads its own net-conf.json
      );
      CREATE TABLE leases (
        key        TEXT PRIMARY KEY,             -- flannel's subnet key: 10.5.52.0-24
        value      TEXT NOT NULL,                -- flannel's lease JSON, byte for byte
        expires_at INTEGER,                      -- wall-clock ms; NULL = reservation
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
    `);
  } else if (version !== 1) {
    throw new Error(`unknown lease store schema version ${version} (this weft knows ${SCHEMA_VERSION})`);
  }
  // Version 2: expiry on the boot clock, and deletes that say they were a lapse.
  db.exec(`
    ALTER TABLE leases ADD COLUMN expires_boot INTEGER;  -- boot-clock ms (CLOCK_BOOTTIME)
    ALTER TABLE leases ADD COLUMN boot_id TEXT;          -- the boot expires_boot belongs to
    ALTER TABLE changes ADD COLUMN expires_boot INTEGER;
    ALTER TABLE changes ADD COLUMN boot_id TEXT;
    ALTER TABLE changes ADD COLUMN cause TEXT;           -- 'expired' on a delete that was a lapse
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

const LIVE = '(expires_at IS NULL OR (boot_id = @boot AND expires_boot > @bootNow) OR (boot_id IS NOT @boot AND expires_at > @wallNow))';
const LAPSED = '(expires_at IS NOT NULL AND ((boot_id = @boot AND expires_boot <= @bootNow) OR (boot_id IS NOT @boot AND expires_at <= @wallNow)))';
const COLUMNS = 'key, value, expires_at, expires_boot, boot_id';

function prepare(db: Database.Database) {
  return {
    getLease: db.prepare(`SELECT ${COLUMNS} FROM leases WHERE key = @key AND ${LIVE}`),
    listLeases: db.prepare(`SELECT ${COLUMNS} FROM leases WHERE ${LIVE} ORDER BY key`),
    putLease: db.prepare(
      `INSERT INTO leases (${COLUMNS}, revision) VALUES (@key, @value, @expires_at, @expires_boot, @boot_id, @revision) ` +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, ' +
        'expires_boot = excluded.expires_boot, boot_id = excluded.boot_id, revision = excluded.revision',
    ),
    deleteLease: db.prepare('DELETE FROM leases WHERE key = ?'),
    anyExpired: db.prepare(`SELECT 1 FROM leases WHERE ${LAPSED} LIMIT 1`),
    expired: db.prepare(`SELECT ${COLUMNS} FROM leases WHERE ${LAPSED} ORDER BY key`),
    addChange: db.prepare(
      'INSERT INTO changes (key, op, value, expires_at, expires_boot, boot_id, cause) ' +
        'VALUES (@key, @op, @value, @expires_at, @expires_boot, @boot_id, @cause)',
    ),
    changesSince: db.prepare(`SELECT revision, op, cause, ${COLUMNS} FROM changes WHERE revision > ? ORDER BY revision LIMIT ?`),
    trimChanges: db.prepare('DELETE FROM changes WHERE revision <= ?'),
    currentRevision: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'changes'"),
    getCompacted: db.prepare("SELECT value FROM meta WHERE name = 'compacted'"),
    setCompacted: db.prepare("INSERT INTO meta (name, value) VALUES ('compacted', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
  };
}
