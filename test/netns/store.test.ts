// The lease store contract, run against both stores: a real etcd (Debian's
// etcd-server, a fresh member per run on free loopback ports and a temp data
// dir) and the embedded SQLite file. Then what only one of them has: etcd
// outages, partitions and wipes; SQLite shared by processes in different
// namespaces.
//
// The partition test (etcd in a namespace of its own):
//
//   root namespace (this test: EtcdStore + watcher)      namespace <prefix>e
//   +----------------------------------+                 +---------------------------+
//   | <prefix>h  10.251.N.1/30  -------+--- veth ------- +-- <prefix>c 10.251.N.2/30 |
//   +----------------------------------+                 |   etcd :2379              |
//                                                        +---------------------------+
//   `ip link set <prefix>h down` cuts the client off without closing its
//   connection; etcdctl inside the namespace changes leases meanwhile.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import pino from 'pino';

import { type Cidr4, formatCidr4, formatIp4, parseCidr4, parseIp4 } from '../../src/cidr';
import {
  type EtcdServer,
  etcdctlCompact,
  etcdctlDel,
  etcdctlGet,
  etcdctlLeaseGrant,
  etcdctlPut,
  freePort,
  startEtcd,
} from '../../lab/etcd';
import { deleteNamespaces, Netns, run, runPrefix } from '../../lab/netns';
import { CONFIG_NOT_FOUND, EtcdStore } from '../../src/store/etcd';
import { SqliteStore } from '../../src/store/sqlite';
import { SqliteAdmin } from '../../lab/sqlite-admin';
import {
  ConfigNotFoundError,
  EXPIRATION_NOT_READ,
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  type LeaseStore,
  SubnetTakenError,
  type WatchBatch,
} from '../../src/store/types';
import { subnetKey } from '../../src/subnet/key';

const PREFIX = runPrefix('wst');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-store-'));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(TMP, { recursive: true, force: true });
});

const VXLAN: LeaseAttrs = { publicIp: parseIp4('192.168.64.3'), backend: { type: 'vxlan', vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' } };
const VXLAN_JSON = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const UDP: LeaseAttrs = { publicIp: parseIp4('10.0.2.15'), backend: { type: 'udp' } };
const UDP_JSON = '{"PublicIP":"10.0.2.15","PublicIPv6":null}';
/** A lease as a flannel node on another host writes it. */
const FLANNEL_PEER_JSON = '{"PublicIP":"192.168.64.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"2a:8e:51:0c:9d:17"}}';

const NET_CONF = '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}\n';

// --- helpers -----------------------------------------------------------------

interface LogLine {
  level: number;
  msg: string;
  key?: string;
  [k: string]: unknown;
}

function captureLogger(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

const WARN = 40;

function sn(text: string): Cidr4 {
  return parseCidr4(text);
}

/** One lease, looked up through the store's own list. */
async function getLease(store: LeaseStore, subnet: Cidr4): Promise<Lease | null> {
  return (await store.listLeases()).leases.find((l) => formatCidr4(l.subnet) === formatCidr4(subnet)) ?? null;
}

const attrsOf = (l: Lease | null | undefined) => (l ? { publicIp: l.publicIp, backend: l.backend } : l);

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, detail?: () => string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await delay(20);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
    }),
  ]);
}

/** Runs a watch in the background and records what it yields. */
class Watch {
  readonly batches: WatchBatch[] = [];
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;
  private failure: Error | null = null;

  constructor(store: LeaseStore, cursor: string) {
    this.done = (async () => {
      try {
        for await (const b of store.watchLeases(cursor, this.ac.signal)) this.batches.push(b);
      } catch (err) {
        this.failure = err as Error;
      }
    })();
  }

  /** Every event, snapshots shown as {snapshot: [subnets]}. */
  events(): (LeaseEvent | { snapshot: string[] })[] {
    return this.batches.flatMap((b): (LeaseEvent | { snapshot: string[] })[] =>
      b.kind === 'events' ? b.events : [{ snapshot: b.leases.map((l) => formatCidr4(l.subnet)) }],
    );
  }

  /** Compact text of every event: "+10.5.1.0/24", "-10.5.1.0/24", "snapshot[...]". */
  summary(): string[] {
    return this.events().map((e) =>
      'snapshot' in e ? `snapshot[${e.snapshot.join(',')}]` : e.type === 'added' ? `+${formatCidr4(e.lease.subnet)}` : `-${formatCidr4(e.subnet)}`,
    );
  }

  added(subnet: string): Lease | undefined {
    for (const e of this.events()) if (!('snapshot' in e) && e.type === 'added' && formatCidr4(e.lease.subnet) === subnet) return e.lease;
    return undefined;
  }

  async until(what: string, cond: (summary: string[]) => boolean, timeoutMs: number): Promise<number> {
    return waitFor(what, () => {
      if (this.failure) throw this.failure;
      return cond(this.summary());
    }, timeoutMs, () => `watch saw: ${JSON.stringify(this.summary())}`);
  }

  /** Aborts and waits for the iterator to finish; rejects if that takes more than 2 s. */
  async stop(): Promise<number> {
    const t0 = Date.now();
    this.ac.abort();
    await withTimeout(this.done, 2_000, 'watch stop');
    if (this.failure) throw this.failure;
    return Date.now() - t0;
  }
}

/** What the contract needs besides the store: the store's own tools (etcdctl, or a second SQLite connection). */
interface Harness {
  store: LeaseStore;
  lines: LogLine[];
  /** The shortest TTL the store honours. */
  minTtl: number;
  /** The full key of a subnet, as a warning names it. */
  keyOf(subnetKeyText: string): string;
  rawValue(subnet: Cidr4): Promise<Buffer | null>;
  /** Writes a key by hand, as another (flannel) node would; ttl 0 = no lease. */
  putByHand(keyName: string, value: string, ttlSeconds: number): Promise<void>;
  deleteByHand(keyName: string): Promise<void>;
  /** Drops the whole change history up to now. */
  compact(): Promise<void>;
  close(): Promise<void>;
}

type HarnessFactory = (opts?: { defaultPrefix?: boolean }) => Promise<Harness>;

let seq = 0;

function etcdHarness(server: () => EtcdServer): HarnessFactory {
  return async (opts = {}) => {
    const endpoint = server().endpoint;
    const prefix = opts.defaultPrefix ? '/coreos.com/network' : `/weft-test-${++seq}/network`;
    const { log, lines } = captureLogger();
    // Pages of two keys: every list in the contract then takes several range calls.
    const store = new EtcdStore({ endpoints: [endpoint], prefix: opts.defaultPrefix ? undefined : prefix, log, callTimeoutMs: 2_000, listPageSize: 2 });
    return {
      store,
      lines,
      minTtl: 2, // etcd 3.4 raises shorter TTLs to 2 s (1.5 x the election timeout)
      keyOf: (k) => `${prefix}/subnets/${k}`,
      rawValue: async (subnet) => (await etcdctlGet(endpoint, `${prefix}/subnets/${subnetKey(subnet)}`))?.value ?? null,
      putByHand: async (k, value, ttl) => {
        const lease = ttl > 0 ? await etcdctlLeaseGrant(endpoint, ttl) : undefined;
        await etcdctlPut(endpoint, `${prefix}/subnets/${k}`, value, { lease });
      },
      deleteByHand: async (k) => void (await etcdctlDel(endpoint, `${prefix}/subnets/${k}`)),
      compact: async () => void (await etcdctlCompact(endpoint)),
      close: () => store.close(),
    };
  };
}

function sqliteHarness(): HarnessFactory {
  return async () => {
    const file = path.join(TMP, `leases-${++seq}.db`);
    const { log, lines } = captureLogger();
    const store = new SqliteStore({ path: file, log });
    // The "other node": a second connection to the same file.
    const other = (): SqliteAdmin => new SqliteAdmin({ path: file, log: pino({ level: 'silent' }) });
    const withOther = async <T>(fn: (s: SqliteAdmin) => T): Promise<T> => {
      const s = other();
      try {
        return fn(s);
      } finally {
        await s.close();
      }
    };
    return {
      store,
      lines,
      minTtl: 1,
      keyOf: (k) => k,
      rawValue: (subnet) => withOther((s) => {
        const raw = s.getRaw(subnetKey(subnet));
        return raw ? Buffer.from(raw.value) : null;
      }),
      putByHand: (k, value, ttl) => withOther((s) => void s.putRaw(k, value, ttl)),
      deleteByHand: (k) => withOther((s) => s.deleteRaw(k)),
      compact: () => withOther((s) => void s.compactChanges(0)),
      close: () => store.close(),
    };
  };
}

// --- the contract --------------------------------------------------------------

function contract(make: HarnessFactory): void {
  const open: Harness[] = [];
  const harness = async (opts?: { defaultPrefix?: boolean }): Promise<Harness> => {
    const h = await make(opts);
    open.push(h);
    return h;
  };
  after(async () => {
    for (const h of open) await h.close();
  });



  it('creates a lease once: a second create of the subnet is SubnetTakenError', async () => {
    const h = await harness();
    const t0 = Date.now();
    const exp = await h.store.createLease(sn('10.5.52.0/24'), VXLAN, 600);
    assert.ok(exp && Math.abs(exp.getTime() - (t0 + 600_000)) < 2_000, `expiration ${exp?.toISOString()}`);
    await assert.rejects(h.store.createLease(sn('10.5.52.0/24'), UDP, 600), (err: Error) => {
      assert.ok(err instanceof SubnetTakenError);
      assert.equal(err.message, 'subnet already exists');
      assert.equal(formatCidr4(err.subnet), '10.5.52.0/24');
      return true;
    });
    // The loser changed nothing.
    const lease = await getLease(h.store, sn('10.5.52.0/24'));
    assert.deepEqual(attrsOf(lease), VXLAN);
    assert.ok(lease?.expiration && Math.abs(lease.expiration.getTime() - (t0 + 600_000)) < 2_500);
    assert.equal(await getLease(h.store, sn('10.5.53.0/24')), null);
  });

  it('stores flannel\'s exact bytes for vxlan and udp leases', async () => {
    const h = await harness();
    await h.store.createLease(sn('10.5.52.0/24'), VXLAN, 600);
    await h.store.createLease(sn('10.5.7.0/24'), UDP, 600);
    assert.equal((await h.rawValue(sn('10.5.52.0/24')))?.toString('latin1'), VXLAN_JSON);
    assert.equal((await h.rawValue(sn('10.5.7.0/24')))?.toString('latin1'), UDP_JSON);
    // Renewal rewrites the same bytes.
    await h.store.updateLease(sn('10.5.52.0/24'), VXLAN, 600);
    assert.equal((await h.rawValue(sn('10.5.52.0/24')))?.toString('latin1'), VXLAN_JSON);
  });

  it('reads a lease a flannel node wrote by hand, and reports it to a watcher as added', async () => {
    const h = await harness();
    const { cursor } = await h.store.listLeases();
    const w = new Watch(h.store, cursor);
    try {
      await h.putByHand('10.5.9.0-24', FLANNEL_PEER_JSON, 600);
      await w.until('+10.5.9.0/24', (s) => s.includes('+10.5.9.0/24'), 10_000);
      const lease = w.added('10.5.9.0/24');
      assert.deepEqual(attrsOf(lease), { publicIp: parseIp4('192.168.64.9'), backend: { type: 'vxlan', vni: 1, vtepMac: '2a:8e:51:0c:9d:17' } });
      assert.ok(lease?.expiration && lease.expiration.getTime() > Date.now() + 590_000, `expiration ${lease?.expiration?.toISOString()}`);
      const listed = (await h.store.listLeases()).leases.map((l) => formatCidr4(l.subnet));
      assert.deepEqual(listed, ['10.5.9.0/24']);
    } finally {
      await w.stop();
    }
  });

  it('lists a reservation (a key without TTL) with expiration null and never hands it out', async () => {
    const h = await harness();
    await h.putByHand('10.5.200.0-24', FLANNEL_PEER_JSON, 0);
    const { leases } = await h.store.listLeases();
    assert.equal(leases.length, 1);
    assert.equal(leases[0].expiration, null);
    await assert.rejects(h.store.createLease(sn('10.5.200.0/24'), VXLAN, 600), SubnetTakenError);
    // Renewing with TTL 0 keeps it a reservation.
    assert.equal(await h.store.updateLease(sn('10.5.200.0/24'), VXLAN, 0), null);
    assert.equal((await getLease(h.store, sn('10.5.200.0/24')))?.expiration, null);
    // A lease created without TTL is one too.
    assert.equal(await h.store.createLease(sn('10.5.201.0/24'), UDP, 0), null);
    assert.equal((await getLease(h.store, sn('10.5.201.0/24')))?.expiration, null);
  });

  it('lists without reading expirations when asked: the same leases, a reservation still null', async () => {
    const h = await harness();
    await h.store.createLease(sn('10.5.1.0/24'), VXLAN, 600);
    await h.putByHand('10.5.2.0-24', FLANNEL_PEER_JSON, 0);
    await h.store.createLease(sn('10.5.3.0/24'), UDP, 600);
    await h.store.createLease(sn('10.5.4.0/24'), UDP, 600);
    await h.store.createLease(sn('10.5.5.0/24'), VXLAN, 600);
    const full = await h.store.listLeases();
    const quick = await h.store.listLeases({ expirations: false });
    const view = (ls: Lease[]) => ls.map((l) => [formatCidr4(l.subnet), attrsOf(l)]);
    assert.deepEqual(view(quick.leases), view(full.leases));
    assert.equal(full.leases.length, 5);
    assert.equal(quick.cursor, full.cursor);
    for (const l of quick.leases) {
      if (formatCidr4(l.subnet) === '10.5.2.0/24') assert.equal(l.expiration, null, 'the reservation');
      // Not a reservation: the exact time where it comes free (SQLite), else not read.
      else assert.ok(l.expiration === EXPIRATION_NOT_READ || (l.expiration && l.expiration.getTime() > Date.now()), formatCidr4(l.subnet));
    }
  });

  it('skips a malformed value or key with a warning naming it, and lists the others', async () => {
    const h = await harness();
    const { cursor } = await h.store.listLeases();
    const w = new Watch(h.store, cursor);
    try {
      await h.store.createLease(sn('10.5.1.0/24'), VXLAN, 600);
      await h.putByHand('10.5.2.0-24', '{"PublicIP":"10.1.2.300"}', 600);
      await h.putByHand('10.5.3.0-24', 'not json', 0);
      await h.putByHand('10.5.4.0-24', '{"PublicIP":"10.0.0.4","PublicIPv6":null,"BackendType":"vxlan"}', 0);
      await h.putByHand('not-a-subnet', UDP_JSON, 0);
      await h.store.createLease(sn('10.5.5.0/24'), UDP, 600);

      const { leases } = await h.store.listLeases();
      assert.deepEqual(leases.map((l) => formatCidr4(l.subnet)).sort(), ['10.5.1.0/24', '10.5.5.0/24']);
      for (const k of ['10.5.2.0-24', '10.5.3.0-24', '10.5.4.0-24', 'not-a-subnet']) {
        const warned = h.lines.filter((l) => l.level === WARN && l.key === h.keyOf(k));
        assert.ok(warned.length > 0, `a warning names ${h.keyOf(k)}: ${JSON.stringify(h.lines.filter((l) => l.level >= WARN))}`);
      }
      assert.match(JSON.stringify(h.lines.find((l) => l.key === h.keyOf('10.5.2.0-24'))), /PublicIP is not an IPv4 address/);
      assert.equal(await getLease(h.store, sn('10.5.3.0/24')), null);
      // The watch skips them the same way.
      await w.until('+10.5.5.0/24', (s) => s.includes('+10.5.5.0/24'), 10_000);
      assert.deepEqual(w.summary(), ['+10.5.1.0/24', '+10.5.5.0/24']);
    } finally {
      await w.stop();
    }
  });

  it('reports changes after the cursor in order, once each: create, renew, delete', async () => {
    const h = await harness();
    await h.store.createLease(sn('10.5.60.0/24'), VXLAN, 600); // before the cursor: not reported
    const { cursor } = await h.store.listLeases();
    const w = new Watch(h.store, cursor);
    try {
      await h.store.createLease(sn('10.5.61.0/24'), VXLAN, 600);
      await h.store.updateLease(sn('10.5.61.0/24'), { ...VXLAN, publicIp: parseIp4('192.168.64.4') }, 600);
      await h.store.deleteLease(sn('10.5.61.0/24'));
      await h.store.deleteLease(sn('10.5.62.0/24')); // absent: no event
      await h.store.deleteLease(sn('10.5.60.0/24'));
      await w.until('-10.5.60.0/24', (s) => s.includes('-10.5.60.0/24'), 10_000);
      await delay(500);
      assert.deepEqual(w.summary(), ['+10.5.61.0/24', '+10.5.61.0/24', '-10.5.61.0/24', '-10.5.60.0/24']);
      const renewed = w.events()[1] as LeaseEvent;
      assert.equal(renewed.type === 'added' && formatIp4(renewed.lease.publicIp), '192.168.64.4');
      // The last batch's cursor is where a new watch picks up: nothing more to see.
      const last = w.batches[w.batches.length - 1];
      const w2 = new Watch(h.store, last.cursor);
      await delay(600);
      assert.deepEqual(w2.summary(), []);
      await w2.stop();
    } finally {
      await w.stop();
    }
  });

  it('lets a short TTL lapse: the lease disappears and a watcher sees it removed', async () => {
    const h = await harness();
    const { cursor } = await h.store.listLeases();
    const w = new Watch(h.store, cursor);
    try {
      const t0 = Date.now();
      await h.store.createLease(sn('10.5.70.0/24'), UDP, h.minTtl);
      await h.putByHand('10.5.71.0-24', FLANNEL_PEER_JSON, h.minTtl);
      await w.until('both added', (s) => s.includes('+10.5.70.0/24') && s.includes('+10.5.71.0/24'), 10_000);
      await w.until('both removed', (s) => s.includes('-10.5.70.0/24') && s.includes('-10.5.71.0/24'), h.minTtl * 1000 + 8_000);
      const took = Date.now() - t0;
      assert.ok(took >= h.minTtl * 1000 - 100, `removed after ${took} ms, TTL ${h.minTtl} s`);
      assert.deepEqual((await h.store.listLeases()).leases, []);
      assert.equal(await getLease(h.store, sn('10.5.70.0/24')), null);
      // Lapsed means free again.
      await h.store.createLease(sn('10.5.70.0/24'), VXLAN, 600);
    } finally {
      await w.stop();
    }
  });

  it('reports a delete by hand as removed', async () => {
    const h = await harness();
    await h.store.createLease(sn('10.5.80.0/24'), VXLAN, 600);
    const { cursor } = await h.store.listLeases();
    const w = new Watch(h.store, cursor);
    try {
      await h.deleteByHand('10.5.80.0-24');
      await w.until('-10.5.80.0/24', (s) => s.includes('-10.5.80.0/24'), 10_000);
      assert.deepEqual(w.summary(), ['-10.5.80.0/24']);
    } finally {
      await w.stop();
    }
  });

  it('gives a snapshot to a watch whose cursor was compacted away, then carries on with events', async () => {
    const h = await harness();
    await h.store.createLease(sn('10.5.90.0/24'), VXLAN, 600);
    const { cursor } = await h.store.listLeases();
    await h.store.createLease(sn('10.5.91.0/24'), VXLAN, 600);
    await h.store.createLease(sn('10.5.92.0/24'), UDP, 600);
    await h.store.deleteLease(sn('10.5.90.0/24'));
    await h.compact();
    const w = new Watch(h.store, cursor);
    try {
      await w.until('a snapshot', (s) => s.length > 0, 10_000);
      assert.deepEqual(w.summary(), ['snapshot[10.5.91.0/24,10.5.92.0/24]']);
      const snap = w.batches[0];
      assert.equal(snap.kind, 'snapshot');
      assert.ok(Number(snap.cursor) > Number(cursor));
      await h.store.createLease(sn('10.5.93.0/24'), VXLAN, 600);
      await w.until('+10.5.93.0/24', (s) => s.includes('+10.5.93.0/24'), 10_000);
      assert.deepEqual(w.summary(), ['snapshot[10.5.91.0/24,10.5.92.0/24]', '+10.5.93.0/24']);
    } finally {
      await w.stop();
    }
  });
}

// --- etcd ------------------------------------------------------------------------

describe('lease store contract: etcd', () => {
  let server: EtcdServer;
  before(async () => {
    server = await startEtcd({ clientPort: await freePort(), peerPort: await freePort(), dataDir: path.join(TMP, 'etcd-contract') });
  });
  after(async () => {
    await server?.stop();
  });
  contract(etcdHarness(() => server));

  it("reads <prefix>/config, and a missing one is flannel's error", async () => {
    const { log } = captureLogger();
    const store = new EtcdStore({ endpoints: [server.endpoint], log, callTimeoutMs: 2_000 });
    try {
      await assert.rejects(store.getNetworkConfig(), (err: Error) => {
        assert.ok(err instanceof ConfigNotFoundError, `${err.name}: ${err.message}`);
        assert.equal(err.message, CONFIG_NOT_FOUND);
        return true;
      });
      await etcdctlPut(server.endpoint, '/coreos.com/network/config', NET_CONF);
      assert.equal(await store.getNetworkConfig(), NET_CONF);
    } finally {
      await etcdctlDel(server.endpoint, '/coreos.com/network/config');
      await store.close();
    }
  });
});

describe('etcd outages', () => {
  let server: EtcdServer;
  const stores: EtcdStore[] = [];
  before(async () => {
    server = await startEtcd({ clientPort: await freePort(), peerPort: await freePort(), dataDir: path.join(TMP, 'etcd-outage') });
  });
  after(async () => {
    for (const s of stores) await s.close();
    await server?.stop();
  });
  const open = (prefix: string, callTimeoutMs = 2_000, endpoints = [server.endpoint]) => {
    const { log, lines } = captureLogger();
    const store = new EtcdStore({ endpoints, prefix, log, callTimeoutMs });
    stores.push(store);
    return { store, lines };
  };

  it('fails calls in bounded time, naming the endpoints, when etcd is down or silent', async () => {
    // Nothing listening: refused at once.
    const closedPort = await freePort();
    const down = open('/weft-down/network', 1_500, [`http://127.0.0.1:${closedPort}`]).store;
    let t0 = Date.now();
    await assert.rejects(down.listLeases(), new RegExp(`etcd list /weft-down/network/subnets/ failed \\(endpoints http://127\\.0\\.0\\.1:${closedPort}\\): .*UNAVAILABLE`));
    assert.ok(Date.now() - t0 < 3_000, `refused after ${Date.now() - t0} ms`);

    // A listener that accepts and never answers: the call deadline ends it.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => void sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const hung = open('/weft-silent/network', 1_500, [`http://127.0.0.1:${port}`]);
      t0 = Date.now();
      await assert.rejects(hung.store.createLease(sn('10.5.1.0/24'), VXLAN, 600), new RegExp(`etcd grant lease \\(ttl 600s\\) failed \\(endpoints http://127\\.0\\.0\\.1:${port}\\): .*DEADLINE_EXCEEDED`));
      const took = Date.now() - t0;
      assert.ok(took >= 1_400 && took < 4_000, `deadline after ${took} ms`);
      // A watch on it neither throws nor spins, and stops at once when asked.
      const w = new Watch(hung.store, '0');
      await delay(5_000);
      const attempts = hung.lines.filter((l) => /etcd watch (lost|still down)/.test(l.msg)).length;
      assert.equal(hung.lines.filter((l) => l.level === WARN && /etcd watch lost/.test(l.msg)).length, 1, 'the outage is logged once');
      assert.ok(attempts >= 1 && attempts <= 4, `${attempts} attempts in 5 s (each waits 3 s for etcd to acknowledge)`);
      assert.ok((await w.stop()) < 500);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('resumes its watch after etcd restarts: nothing missed, nothing twice, the outage logged once, retries backed off', { timeout: 60_000 }, async () => {
    const { store, lines } = open('/weft-resume/network');
    await store.createLease(sn('10.5.1.0/24'), VXLAN, 600);
    const { cursor } = await store.listLeases();
    const w = new Watch(store, cursor);
    try {
      await store.createLease(sn('10.5.2.0/24'), VXLAN, 600);
      await w.until('+10.5.2.0/24', (s) => s.includes('+10.5.2.0/24'), 10_000);

      await server.stop();
      await waitFor('the outage to be noticed', () => lines.some((l) => /etcd watch lost/.test(l.msg)), 10_000);
      const outageStart = Date.now();
      // A call meanwhile fails promptly and names the endpoint.
      await assert.rejects(store.listLeases(), new RegExp(`endpoints ${server.endpoint.replace(/[.]/g, '\\.')}`));
      await delay(4_000);
      await server.restart();
      const downMs = Date.now() - outageStart;

      await store.createLease(sn('10.5.3.0/24'), UDP, 600);
      await store.deleteLease(sn('10.5.1.0/24'));
      const resumedIn = await w.until('the changes after the restart', (s) => s.includes('-10.5.1.0/24'), 15_000);
      await delay(500);
      assert.deepEqual(w.summary(), ['+10.5.2.0/24', '+10.5.3.0/24', '-10.5.1.0/24']);

      const warns = lines.filter((l) => l.level === WARN && /etcd watch lost/.test(l.msg));
      assert.equal(warns.length, 1, 'one warning for the whole outage');
      assert.match(String(warns[0].endpoints), new RegExp(server.endpoint.replace(/[.]/g, '\\.')));
      const retries = lines.filter((l) => /etcd watch still down/.test(l.msg)).map((l) => l.backoffMs as number);
      // ~4.5 s down: 100, 200, 400, 800, 1600, 3200 ms apart; never more often.
      assert.ok(retries.length >= 3 && retries.length <= 8, `retries: ${JSON.stringify(retries)}`);
      for (let i = 1; i < retries.length; i++) assert.ok(retries[i] >= retries[i - 1], `backoff grows: ${JSON.stringify(retries)}`);
      assert.ok(retries.every((b) => b <= 5_000));
      const resumed = lines.filter((l) => /etcd watch resumed/.test(l.msg));
      assert.equal(resumed.length, 1);
      assert.ok((resumed[0].outageMs as number) >= 4_000, `outage of ${resumed[0].outageMs} ms reported`);
      process.stderr.write(`# etcd down ${downMs} ms; ${retries.length} retries (backoff ${retries.join(', ')} ms); changes seen ${resumedIn} ms after the restart\n`);
    } finally {
      await w.stop();
    }
  });

  it('gives a snapshot when etcd comes back wiped (its revision behind the cursor)', { timeout: 60_000 }, async () => {
    const { store } = open('/weft-wipe/network');
    for (let i = 1; i <= 5; i++) await store.createLease(sn(`10.5.${i}.0/24`), VXLAN, 600);
    const { cursor } = await store.listLeases();
    const w = new Watch(store, cursor);
    try {
      await delay(300);
      await server.stop();
      server.wipe();
      await server.restart();
      await w.until('a snapshot', (s) => s.some((e) => e.startsWith('snapshot')), 20_000);
      assert.deepEqual(w.summary(), ['snapshot[]']);
      // The daemon re-creates its lease with the same subnet.
      await store.createLease(sn('10.5.1.0/24'), VXLAN, 600);
      await w.until('+10.5.1.0/24', (s) => s.includes('+10.5.1.0/24'), 10_000);
      assert.deepEqual(w.summary(), ['snapshot[]', '+10.5.1.0/24']);
    } finally {
      await w.stop();
    }
  });
});

describe('etcd behind a partition', () => {
  const nsName = `${PREFIX}e`;
  const hostVeth = `${PREFIX}h`;
  const octet = (process.pid % 250) + 1;
  const etcdIp = `10.251.${octet}.2`;
  let ns: Netns;
  let server: EtcdServer;
  let store: EtcdStore;
  let lines: LogLine[];

  before(async () => {
    ns = Netns.create(nsName);
    run('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', `${PREFIX}c`, 'netns', nsName]);
    run('ip', ['addr', 'add', `10.251.${octet}.1/30`, 'dev', hostVeth]);
    run('ip', ['link', 'set', hostVeth, 'up']);
    ns.ip('addr', 'add', `${etcdIp}/30`, 'dev', `${PREFIX}c`);
    ns.ip('link', 'set', `${PREFIX}c`, 'up');
    server = await startEtcd({ ns, listenIp: etcdIp, clientPort: 2379, peerPort: 2380, dataDir: path.join(TMP, 'etcd-partition') });
    const cap = captureLogger();
    lines = cap.lines;
    store = new EtcdStore({ endpoints: [server.endpoint], log: cap.log, callTimeoutMs: 2_000 });
  });
  after(async () => {
    await store?.close();
    await server?.stop();
    ns?.delete(); // takes the veth pair with it
  });

  it('notices a silent partition, and after it sees the changes made meanwhile', { timeout: 90_000 }, async () => {
    await store.createLease(sn('10.5.1.0/24'), VXLAN, 600);
    const { cursor } = await store.listLeases();
    const w = new Watch(store, cursor);
    try {
      await store.createLease(sn('10.5.2.0/24'), VXLAN, 600);
      await w.until('+10.5.2.0/24', (s) => s.includes('+10.5.2.0/24'), 10_000);

      run('ip', ['link', 'set', hostVeth, 'down']);
      // Changes made while this node cannot reach etcd: a flannel node's lease, and ours deleted.
      const lease = await etcdctlLeaseGrant(server.endpoint, 600, { ns });
      await etcdctlPut(server.endpoint, '/coreos.com/network/subnets/10.5.9.0-24', FLANNEL_PEER_JSON, { ns, lease });
      await etcdctlDel(server.endpoint, '/coreos.com/network/subnets/10.5.1.0-24', { ns });
      // keepalive: a ping every 10 s, 5 s to answer.
      const noticed = await waitFor('the partition to be noticed', () => lines.some((l) => /etcd watch lost/.test(l.msg)), 30_000);
      assert.deepEqual(w.summary(), ['+10.5.2.0/24'], 'nothing seen while cut off');

      run('ip', ['link', 'set', hostVeth, 'up']);
      const healed = await w.until('the changes made during the partition', (s) => s.includes('-10.5.1.0/24'), 20_000);
      await delay(500);
      assert.deepEqual(w.summary(), ['+10.5.2.0/24', '+10.5.9.0/24', '-10.5.1.0/24']);
      assert.deepEqual(w.added('10.5.9.0/24')?.backend, { type: 'vxlan', vni: 1, vtepMac: '2a:8e:51:0c:9d:17' });
      assert.equal(lines.filter((l) => l.level === WARN && /etcd watch lost/.test(l.msg)).length, 1);
      process.stderr.write(`# partition noticed after ${noticed} ms, changes seen ${healed} ms after the link came back\n`);
    } finally {
      await w.stop();
    }
  });
});

// --- SQLite ----------------------------------------------------------------------

describe('lease store contract: sqlite', () => {
  contract(sqliteHarness());
});

describe('sqlite shared by processes', () => {
  const nsName = `${PREFIX}s`;
  let ns: Netns;
  before(() => {
    ns = Netns.create(nsName);
  });
  after(() => ns?.delete());

  it('two daemons in different namespaces race createLease for the same subnets: exactly one wins each', { timeout: 60_000 }, async () => {
    const file = path.join(TMP, 'race.db');
    const watcherStore = new SqliteStore({ path: file, log: pino({ level: 'silent' }), pollIntervalMs: 50 });
    const w = new Watch(watcherStore, (await watcherStore.listLeases()).cursor);
    const script = path.join(TMP, 'race.js');
    const SUBNETS = 60;
    fs.writeFileSync(
      script,
      `const { SqliteStore } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'store', 'sqlite.js'))});
const { parseCidr4, parseIp4 } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'cidr.js'))});
const pino = require(${JSON.stringify(require.resolve('pino'))});
const [file, me, startAt, seed] = process.argv.slice(2);
// Each racer walks the subnets in its own shuffled order, so they collide all along.
let x = Number(seed);
const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
const order = Array.from({ length: ${SUBNETS} }, (_, i) => i);
for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
(async () => {
  const store = new SqliteStore({ path: file, log: pino({ level: 'silent' }) });
  while (Date.now() < Number(startAt)) {}
  const won = [];
  let lost = 0;
  for (const i of order) {
    try {
      await store.createLease(parseCidr4('10.6.' + i + '.0/24'), { publicIp: parseIp4(me), backend: { type: 'udp' } }, 600);
      won.push(i);
    } catch (err) {
      if (err.name !== 'SubnetTakenError') throw err;
      lost++;
    }
    // A moment between attempts, so neither racer holds the lock for the whole run.
    await new Promise((r) => setTimeout(r, rand() * 4));
  }
  await store.close();
  process.stdout.write(JSON.stringify({ won, lost }));
})().catch((err) => { console.error(err); process.exit(1); });
`,
    );
    const startAt = String(Date.now() + 1_500);
    const runOne = (argv: string[]): Promise<{ won: number[]; lost: number }> =>
      new Promise((resolve, reject) => {
        const child = argv[0] === 'ns' ? ns.spawn(process.execPath, argv.slice(1)) : spawn(process.execPath, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let errText = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (errText += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(JSON.parse(out) as { won: number[]; lost: number });
          else reject(new Error(`racer exited ${code}: ${errText}`));
        });
      });
    try {
      const [ra, rb] = await Promise.all([
        runOne(['host', script, file, '10.0.0.1', startAt, '1']),
        runOne(['ns', script, file, '10.0.0.2', startAt, '2']),
      ]);
      const [a, b] = [ra.won, rb.won];
      const all = [...a, ...b].sort((x, y) => x - y);
      assert.deepEqual(all, Array.from({ length: SUBNETS }, (_, i) => i), 'every subnet won exactly once');
      assert.equal(ra.lost + rb.lost, SUBNETS, 'every attempt that did not win was told SubnetTakenError');
      process.stderr.write(`# race: host process won ${a.length}, namespace process won ${b.length}\n`);
      const { leases } = await watcherStore.listLeases();
      assert.equal(leases.length, SUBNETS);
      for (const l of leases) {
        const i = Number(formatCidr4(l.subnet).split('.')[2]);
        assert.equal(formatIp4(l.publicIp), a.includes(i) ? '10.0.0.1' : '10.0.0.2', `winner of ${formatCidr4(l.subnet)}`);
      }
      // A watcher in a third process saw each lease added once.
      await w.until(`${SUBNETS} adds`, (s) => s.length >= SUBNETS, 10_000);
      await delay(300);
      assert.equal(w.summary().length, SUBNETS);
      assert.equal(new Set(w.summary()).size, SUBNETS);
    } finally {
      await w.stop();
      await watcherStore.close();
    }
  });

  it('lets whoever reads first reap an expired lease, and every watcher sees it removed', { timeout: 30_000 }, async () => {
    const file = path.join(TMP, 'reap.db');
    const a = new SqliteStore({ path: file, log: pino({ level: 'silent' }) });
    const b = new SqliteStore({ path: file, log: pino({ level: 'silent' }), pollIntervalMs: 50 });
    const wa = new Watch(a, '0');
    const wb = new Watch(b, '0');
    try {
      await a.createLease(sn('10.7.1.0/24'), UDP, 1);
      await Promise.all([wa, wb].map((w) => w.until('added then removed', (s) => s.includes('-10.7.1.0/24'), 6_000)));
      assert.deepEqual(wa.summary(), ['+10.7.1.0/24', '-10.7.1.0/24']);
      assert.deepEqual(wb.summary(), ['+10.7.1.0/24', '-10.7.1.0/24']);
    } finally {
      await wa.stop();
      await wb.stop();
      await a.close();
      await b.close();
    }
  });

  it('gives a watcher a snapshot when the file was replaced under it (cursor beyond its revisions)', async () => {
    const file = path.join(TMP, 'replaced.db');
    const a = new SqliteStore({ path: file, log: pino({ level: 'silent' }) });
    for (let i = 0; i < 5; i++) await a.createLease(sn(`10.8.${i}.0/24`), UDP, 600);
    const { cursor } = await a.listLeases();
    await a.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    const b = new SqliteStore({ path: file, log: pino({ level: 'silent' }) });
    await b.createLease(sn('10.8.9.0/24'), UDP, 600);
    const w = new Watch(b, cursor);
    try {
      await w.until('a snapshot', (s) => s.length > 0, 5_000);
      assert.deepEqual(w.summary(), ['snapshot[10.8.9.0/24]']);
    } finally {
      await w.stop();
      await b.close();
    }
  });
});
