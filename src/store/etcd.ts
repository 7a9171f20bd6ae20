// The etcd v3 lease store, in flannel's layout (docs/flannel.md §2), so weft and
// flannel nodes can share one etcd:
//   <prefix>/config                  the network config (written by the operator)
//   <prefix>/subnets/10.5.52.0-24    flannel's lease JSON, attached to an etcd lease
// A key without an etcd lease is a reservation: it never expires.
//
// Design notes.
// - Calls go through the etcd3 client's raw gRPC clients (kv, leaseClient,
//   watchClient) rather than its builders, to see response headers
//   (revisions) and to keep etcd3's Lease helper, which keeps leases alive
//   on its own, out of the picture: flannel's lease is Grant + Put, renewed
//   by a fresh Grant + Put, never kept alive.
// - Every unary call has a deadline (callTimeoutMs), the per-host circuit
//   breaker etcd3 installs by default is replaced by a no-op (a broken
//   circuit reports "circuit open" instead of the real cause and delays
//   recovery by up to 5 s), and a failed call is retried once on each other
//   endpoint. A down etcd thus fails a call in bounded time, and the error
//   names the endpoints.
// - The watch is driven here, on a raw Watch stream, not by etcd3's Watcher.
//   That Watcher resumes from the response header's revision + 1; but a
//   header carries the store's current revision, which runs ahead of the
//   events delivered while a watcher catches up, so a reconnect there can
//   skip changes. It also turns a compaction into a bare 'error' and
//   reconnects with its own 30 s-max backoff. Here the cursor is the
//   mod_revision of the last event delivered (etcd never splits one
//   revision across responses), or a progress notification's revision
//   (etcd sends those only to watchers that are caught up). A lost stream
//   is logged once per outage and reopened from cursor + 1 with backoff
//   100 ms doubling to 5 s, reset when etcd acknowledges the new watch; a
//   compacted start revision becomes a re-list yielded as a 'snapshot', and
//   so does an etcd whose revision is behind the cursor when the watch is
//   acknowledged (restored from a backup, or wiped), which would otherwise
//   stay silent until it caught up with the old cursor.
//   gRPC keepalive pings notice a peer that vanished without closing the
//   connection (a partition), and a watch that etcd never acknowledges is
//   given up after 2 x callTimeoutMs.
// - cockatiel (the fault-handling policies) is etcd3's own dependency; it is
//   used here only to hand etcd3 policies of the type it expects.
import * as fs from 'node:fs';

import { handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, type IEvent, type IKeyValue, type IOptions, isRecoverableError } from 'etcd3';
import { CompareResult, CompareTarget } from 'etcd3/lib/rpc';

import type { Cidr4 } from '../cidr';
import { DEFAULT_ETCD_PREFIX } from '../defaults';
import type { Logger } from '../log';
import { subnetKey } from '../subnet/key';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, leaseOfEntry, Outage, subnetOfKey, WarnedKeys } from './common';
import { errText, WatchStream } from './etcd-watch';
import { encodeLeaseValue } from './lease-json';
import { ConfigNotFoundError, EXPIRATION_NOT_READ, type Lease, type LeaseAttrs, type LeaseEvent, type LeaseStore, SubnetTakenError, type WatchBatch } from './types';

export const CONFIG_NOT_FOUND = 'flannel config not found in etcd store. Did you create your config using etcdv3 API?';
/** How many LeaseTimeToLive calls a list makes at once. */
const TTL_LOOKUP_CONCURRENCY = 16;
/**
 * Keys per range call when listing, all pages at the first page's revision.
 * One range of 20,000 leases is ~4 MB, gRPC's default limit on a message
 * the client takes; in pages a list of any size works, and each page's
 * decode is garbage before the next one arrives.
 */
const LIST_PAGE = 1000;

export interface EtcdStoreOptions {
  /** flannel's --etcd-endpoints, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** flannel's --etcd-prefix. */
  prefix?: string;
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  username?: string;
  password?: string;
  log: Logger;
  /** Deadline of each call to etcd; a watch's creation waits twice this. Default 5000. */
  callTimeoutMs?: number;
  /** Keys per range call of a list (LIST_PAGE); tests make it small to list in many pages. */
  listPageSize?: number;
}

export class EtcdStore implements LeaseStore {
  readonly endpoints: readonly string[];
  readonly description: string;
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly callTimeoutMs: number;
  private readonly listPageSize: number;
  private readonly configKey: Buffer;
  /** `<prefix>/subnets/`, with the trailing slash. */
  private readonly subnetsPrefix: string;
  /** Aborts every watch (their streams and backoff timers) on close(). */
  private readonly closing = new AbortController();
  private readonly warned = new WarnedKeys();

  constructor(opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0) throw new Error('no etcd endpoints given');
    this.endpoints = [...opts.endpoints];
    this.description = `etcd ${this.endpoints.join(',')}`;
    this.prefix = (opts.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.log = opts.log;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.listPageSize = opts.listPageSize ?? LIST_PAGE;
    this.configKey = Buffer.from(`${this.prefix}/config`);
    this.subnetsPrefix = `${this.prefix}/subnets/`;
    this.client = new Etcd3(this.clientOptions(opts));
  }

  private clientOptions(opts: EtcdStoreOptions): IOptions {
    const options: IOptions = {
      hosts: this.endpoints.slice(),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        // Only a watch needs pings; etcd answers pings on an idle connection with GOAWAY.
        'grpc.keepalive_permit_without_calls': 0,
        'grpc.initial_reconnect_backoff_ms': BACKOFF_MIN_MS,
        'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      },
      faultHandling: {
        host: () => noop,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: this.endpoints.length - 1 }),
      },
    };
    if (opts.keyFile || opts.certFile || opts.caFile) {
      const read = (what: string, file: string | undefined): Buffer | undefined => {
        if (!file) return undefined;
        try {
          return fs.readFileSync(file);
        } catch (err) {
          throw new Error(`cannot read etcd ${what} ${file}: ${(err as Error).message}`);
        }
      };
      options.credentials = {
        // grpc takes a missing root certificate as "use the system's roots".
        rootCertificate: read('CA file', opts.caFile) as Buffer,
        privateKey: read('key file', opts.keyFile),
        certChain: read('cert file', opts.certFile),
      };
    }
    if (opts.username) options.auth = { username: opts.username, password: opts.password ?? '' };
    return options;
  }

  async getNetworkConfig(): Promise<string> {
    const res = await this.call('get config', () => this.client.kv.range({ key: this.configKey }));
    if (res.kvs.length === 0) throw new ConfigNotFoundError(CONFIG_NOT_FOUND);
    return res.kvs[0].value.toString();
  }

  async createLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const key = this.leaseKey(subnet);
    const value = Buffer.from(encodeLeaseValue(attrs));
    const grant = ttlSeconds > 0 ? await this.grant(ttlSeconds) : null;
    let created: boolean;
    try {
      const res = await this.call(`create ${key.toString()}`, () =>
        this.client.kv.txn({
          compare: [{ key, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }],
          success: [{ request_put: { key, value, lease: grant?.id ?? 0 } }],
          failure: [],
        }),
      );
      created = res.succeeded;
    } catch (err) {
      // The outcome is unknown: revoking the grant removes the key if the put did land.
      if (grant) await this.revokeQuietly(grant.id);
      throw err;
    }
    if (!created) {
      if (grant) await this.revokeQuietly(grant.id);
      throw new SubnetTakenError(subnet);
    }
    return grant ? grant.expiration : null;
  }

  async updateLease(subnet: Cidr4, attrs: LeaseAttrs, ttlSeconds: number): Promise<Date | null> {
    const key = this.leaseKey(subnet);
    const value = Buffer.from(encodeLeaseValue(attrs));
    // flannel renews with a fresh lease; the old one is left with no keys and lapses.
    const grant = ttlSeconds > 0 ? await this.grant(ttlSeconds) : null;
    try {
      await this.call(`put ${key.toString()}`, () => this.client.kv.put({ key, value, lease: grant?.id ?? 0 }));
    } catch (err) {
      if (grant) await this.revokeQuietly(grant.id);
      throw err;
    }
    return grant ? grant.expiration : null;
  }

  async deleteLease(subnet: Cidr4): Promise<void> {
    const key = this.leaseKey(subnet);
    await this.call(`delete ${key.toString()}`, () => this.client.kv.deleteRange({ key }));
  }

  async listLeases(opts: { expirations?: boolean } = {}): Promise<{ leases: Lease[]; cursor: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listAtOneRevision(opts.expirations !== false);
      } catch (err) {
        // A compaction between two pages: list again from a fresh revision.
        if (attempt >= 3 || !/compacted/i.test((err as Error).message)) throw err;
      }
    }
  }

  private async listAtOneRevision(expirations: boolean): Promise<{ leases: Lease[]; cursor: string }> {
    const [start, end] = prefixRange(this.subnetsPrefix);
    const leases: Lease[] = [];
    const ttls = new Map<string, Promise<Date | null>>();
    let key = start;
    let revision: string | undefined;
    for (;;) {
      const res = await this.call(`list ${this.subnetsPrefix}`, () =>
        this.client.kv.range({ key, range_end: end, limit: this.listPageSize, ...(revision ? { revision } : {}) }),
      );
      revision ??= res.header.revision;
      if (!expirations) {
        // No LeaseTimeToLive per key (flannel makes one each): a key whose
        // etcd lease lapsed since the range read is still listed, and the
        // watch from this cursor delivers its delete.
        for (const kv of res.kvs) {
          const k = kv.key.toString();
          const subnet = this.subnetOf(k);
          const lease = subnet && leaseOfEntry(k, subnet, kv.value.toString(), kv.lease === '0' ? null : EXPIRATION_NOT_READ, this.log, this.warned);
          if (lease) leases.push(lease);
        }
      } else {
        for (let i = 0; i < res.kvs.length; i += TTL_LOOKUP_CONCURRENCY) {
          const chunk = await Promise.all(res.kvs.slice(i, i + TTL_LOOKUP_CONCURRENCY).map((kv) => this.leaseOf(kv, ttls, 'skip')));
          for (const lease of chunk) if (lease) leases.push(lease);
        }
      }
      if (!res.more || res.kvs.length === 0) return { leases, cursor: revision };
      key = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  async *watchLeases(cursor: string, signal: AbortSignal): AsyncIterable<WatchBatch> {
    const abort = AbortSignal.any([signal, this.closing.signal]);
    let rev = parseRevision(cursor);
    let relist = false;
    const outage = new Outage(this.log, 'etcd watch', { endpoints: this.endpoints });

    while (!abort.aborted) {
      try {
        if (relist) {
          const snap = await this.listLeases({ expirations: false });
          rev = parseRevision(snap.cursor);
          relist = false;
          outage.recovered({ revision: rev.toString() });
          yield { kind: 'snapshot', leases: snap.leases, cursor: snap.cursor };
          continue;
        }
        const watch = this.openWatch(rev + 1n);
        try {
          for (;;) {
            const msg = await watch.next(abort);
            if (msg.kind === 'created') {
              outage.recovered({ revision: rev.toString() });
            } else if (msg.kind === 'compacted') {
              this.log.info({ from: (rev + 1n).toString(), compactRevision: msg.compactRevision }, 'etcd history compacted past the watch cursor; listing leases again');
              relist = true;
              break;
            } else if (msg.kind === 'behind') {
              this.log.warn({ endpoints: this.endpoints, cursor: rev.toString(), revision: msg.revision.toString() }, 'etcd is at a revision before the watch cursor (restored or wiped?); listing leases again');
              relist = true;
              break;
            } else if (msg.kind === 'progress') {
              if (msg.revision > rev) rev = msg.revision;
            } else {
              // Decoding may ask etcd for lease TTLs; if that fails the batch is
              // fetched again from the unchanged cursor after reconnecting.
              const events = await this.eventsOf(msg.events);
              rev = msg.lastRevision;
              if (events.length > 0) yield { kind: 'events', events, cursor: rev.toString() };
            }
          }
        } finally {
          watch.close();
        }
      } catch (err) {
        if (abort.aborted) break;
        await outage.failed(new Error(errText(err)), abort, { revision: rev.toString() });
      }
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.client.close();
  }

  // --- internals -----------------------------------------------------------

  private leaseKey(subnet: Cidr4): Buffer {
    return Buffer.from(this.subnetsPrefix + subnetKey(subnet));
  }

  /**
   * A stored key/value as a Lease, or null if malformed (with a warning).
   * A key whose etcd lease lapsed since it was read is going away: lists
   * leave it out, a watch reports it as added-and-expired (its delete follows).
   */
  private async leaseOf(kv: IKeyValue, ttls: Map<string, Promise<Date | null>>, lapsed: 'skip' | 'expired'): Promise<Lease | null> {
    const key = kv.key.toString();
    const subnet = this.subnetOf(key);
    if (!subnet) return null;
    const lease = leaseOfEntry(key, subnet, kv.value.toString(), null, this.log, this.warned);
    if (!lease || kv.lease === '0') return lease;
    let ttl = ttls.get(kv.lease);
    if (!ttl) {
      ttl = this.expirationOf(kv.lease);
      ttls.set(kv.lease, ttl);
    }
    const expiration = await ttl;
    if (expiration) return { ...lease, expiration };
    return lapsed === 'expired' ? { ...lease, expiration: new Date() } : null;
  }

  private subnetOf(key: string): Cidr4 | null {
    return subnetOfKey(key, key.startsWith(this.subnetsPrefix) ? key.slice(this.subnetsPrefix.length) : '/', this.log, this.warned);
  }

  /** When an etcd lease lapses, from its remaining TTL; null if it already has. */
  private async expirationOf(leaseId: string): Promise<Date | null> {
    const t0 = Date.now();
    let ttl: number;
    try {
      const res = await this.call(`lease ${leaseId} time-to-live`, () => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }));
      ttl = Number(res.TTL);
    } catch (err) {
      if (/lease not found/i.test((err as Error).message)) return null;
      throw err;
    }
    return ttl < 0 ? null : new Date(t0 + ttl * 1000);
  }

  private async eventsOf(raw: IEvent[]): Promise<LeaseEvent[]> {
    const ttls = new Map<string, Promise<Date | null>>();
    const events: LeaseEvent[] = [];
    for (const ev of raw) {
      if (ev.type === 'Delete') {
        // etcd does not say whether a lease lapsed or someone deleted the key.
        const subnet = this.subnetOf(ev.kv.key.toString());
        if (subnet) events.push({ type: 'removed', subnet, cause: 'deleted' });
      } else {
        const lease = await this.leaseOf(ev.kv, ttls, 'expired');
        if (lease) events.push({ type: 'added', lease });
      }
    }
    return events;
  }

  private async grant(ttlSeconds: number): Promise<{ id: string; expiration: Date }> {
    const t0 = Date.now();
    const res = await this.call(`grant lease (ttl ${ttlSeconds}s)`, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    if (res.error) throw new Error(`etcd refused a lease of ${ttlSeconds}s: ${res.error}`);
    return { id: res.ID, expiration: new Date(t0 + Number(res.TTL) * 1000) };
  }

  private async revokeQuietly(leaseId: string): Promise<void> {
    try {
      await this.call(`revoke lease ${leaseId}`, () => this.client.leaseClient.leaseRevoke({ ID: leaseId }));
    } catch (err) {
      this.log.debug({ lease: leaseId, err: (err as Error).message }, 'could not revoke an unused etcd lease; it lapses on its own');
    }
  }

  /** Runs one etcd call; a failure becomes an error naming the operation and the endpoints. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new Error(`etcd ${what} failed (endpoints ${this.endpoints.join(',')}): ${errText(err)}`, { cause: err });
    }
  }

  private openWatch(startRevision: bigint): WatchStream {
    const [key, rangeEnd] = prefixRange(this.subnetsPrefix);
    return new WatchStream(
      this.client,
      startRevision,
      { key, range_end: rangeEnd, start_revision: startRevision.toString(), progress_notify: true },
      this.callTimeoutMs * 2,
    );
  }
}

function parseRevision(cursor: string): bigint {
  if (!/^\d+$/.test(cursor)) throw new Error(`invalid etcd watch cursor ${JSON.stringify(cursor)}: expected a revision`);
  return BigInt(cursor);
}

/** [key, range_end) covering every key that starts with prefix. */
function prefixRange(prefix: string): [Buffer, Buffer] {
  const start = Buffer.from(prefix);
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return [start, end.subarray(0, i + 1)];
    }
  }
  return [start, Buffer.from([0])];
}


