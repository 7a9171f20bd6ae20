// Subnet keys, subnet.env, and lease acquisition as flannel does it
// (docs/flannel.md §2, §3). Acquisition runs on the in-memory test fake: these
// tests check the decisions, not a store.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { type Cidr4, formatCidr4, parseCidr4, parseIp4 } from '../../src/cidr';
import { loadNetConf } from '../../src/config/netconf';
import { silentLogger } from '../../src/log';
import type { LeaseAttrs, LeaseStore } from '../../src/store/types';
import { symlinkSync } from 'node:fs';
import { acquireLease, freeSubnets, isCompatible, renewDelayMs } from '../../src/subnet/acquire';
import { formatSubnetEnv, readSubnetEnv, writeSubnetEnv } from '../../src/subnet/env';
import { parseSubnetKey, subnetKey } from '../../src/subnet/key';
import { MemoryLeaseStore } from '../../lab/memory-store';

const C = parseCidr4;
const fmt = (c: Cidr4 | null | undefined) => (c ? formatCidr4(c) : c);

describe('subnet keys', () => {
  it('parses a key or a full etcd path', () => {
    assert.equal(fmt(parseSubnetKey('10.5.52.0-24')), '10.5.52.0/24');
    assert.equal(fmt(parseSubnetKey('/coreos.com/network/subnets/10.5.52.0-24')), '10.5.52.0/24');
    assert.equal(fmt(parseSubnetKey('/p/subnets/10.5.0.128-25')), '10.5.0.128/25');
  });
  it('takes the IPv4 half of a dual-stack key', () => {
    assert.equal(fmt(parseSubnetKey('/coreos.com/network/subnets/10.5.52.0-24&fd00::-64')), '10.5.52.0/24');
    assert.equal(fmt(parseSubnetKey('10.5.52.0-24&fd00:10:244::-64')), '10.5.52.0/24');
  });
  it('refuses garbage and keys that do not name the network address', () => {
    for (const k of ['', 'config', '/coreos.com/network/config', '10.5.52.0', '10.5.52.0/24', '10.5.52.0-', '10.5.52.0-33', '300.5.52.0-24', '10a5b52c0-24', '10.5.52.1-24', '10.5.52.128-24']) {
      assert.equal(parseSubnetKey(k), null, k);
    }
  });
  it('formats as flannel names them and round-trips', () => {
    assert.equal(subnetKey(C('10.5.52.0/24')), '10.5.52.0-24');
    for (const s of ['10.5.52.0/24', '10.0.0.0/8', '192.168.7.4/30', '0.0.0.0/0']) {
      assert.equal(fmt(parseSubnetKey(subnetKey(C(s)))), s);
    }
  });
});

describe('subnet.env', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { network: C('10.5.0.0/16'), subnet: C('10.5.72.0/24'), mtu: 1450, ipMasq: false };

  it("writes flannel's exact bytes, mode 0644, creating the directory", () => {
    const path = join(dir, 'run', 'flannel', 'subnet.env');
    writeSubnetEnv(path, env);
    assert.equal(readFileSync(path, 'utf8'), 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
    assert.equal(statSync(path).mode & 0o777, 0o644);
  });
  it('replaces the file atomically and leaves no temp file behind', () => {
    const path = join(dir, 'atomic', 'subnet.env');
    writeSubnetEnv(path, env);
    const before = statSync(path).ino;
    writeSubnetEnv(path, { ...env, subnet: C('10.5.9.0/24'), ipMasq: true });
    assert.notEqual(statSync(path).ino, before, 'a new inode: renamed over, not rewritten in place');
    assert.deepEqual(readdirSync(join(dir, 'atomic')), ['subnet.env']);
    assert.match(readFileSync(path, 'utf8'), /FLANNEL_SUBNET=10\.5\.9\.1\/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n$/);
  });
  it('round-trips, the subnet coming back as the network (as flannel reads it)', () => {
    const path = join(dir, 'rt.env');
    for (const e of [env, { network: C('10.244.0.0/16'), subnet: C('10.244.255.252/30'), mtu: 8951, ipMasq: true }]) {
      writeSubnetEnv(path, e);
      const r = readSubnetEnv(path)!.env;
      assert.deepEqual([fmt(r.network), fmt(r.subnet), r.mtu, r.ipMasq], [fmt(e.network), fmt(e.subnet), e.mtu, e.ipMasq]);
    }
  });
  it('a missing file is null; missing keys are absent', () => {
    assert.equal(readSubnetEnv(join(dir, 'nope.env')), null);
    const path = join(dir, 'partial.env');
    writeFileSync(path, 'FLANNEL_SUBNET=10.5.3.1/24\n');
    assert.deepEqual(readSubnetEnv(path), { env: { subnet: C('10.5.3.0/24') }, warnings: [] });
  });
  it('takes comments, blank lines, export, quotes; ignores other keys', () => {
    const path = join(dir, 'loose.env');
    writeFileSync(path, '# written by hand\n\nexport FLANNEL_NETWORK="10.5.0.0/16"\nFLANNEL_IPV6_NETWORK=fd00::/48\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n');
    assert.deepEqual(readSubnetEnv(path), { env: { network: C('10.5.0.0/16'), mtu: 1400, ipMasq: true }, warnings: [] });
  });
  it("reads FLANNEL_IPMASQ as flannel's CNI plugin does: exactly \"true\" is true", () => {
    const path = join(dir, 'masq.env');
    for (const [v, want] of [['true', true], ['True', false], ['1', false], ['false', false]] as const) {
      writeFileSync(path, `FLANNEL_IPMASQ=${v}\n`);
      assert.equal(readSubnetEnv(path)!.env.ipMasq, want, v);
    }
  });
  it('a malformed line or value loses only that key, with a warning naming the line and never quoting it', () => {
    const cases: [string, RegExp, object][] = [
      ['FLANNEL_SUBNET=10.5.1.0/24\nroot:$6$SECRET:::\n', /:2: not a KEY=VALUE line$/, { subnet: C('10.5.1.0/24') }],
      ['FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1\n', /:2: FLANNEL_SUBNET has a value that is not valid$/, { network: C('10.5.0.0/16') }],
      ['FLANNEL_SUBNET=10.5.1.0/24\nFLANNEL_MTU=SECRET\n', /:2: FLANNEL_MTU has a value that is not valid$/, { subnet: C('10.5.1.0/24') }],
    ];
    const path = join(dir, 'bad.env');
    for (const [text, re, env] of cases) {
      writeFileSync(path, text);
      const r = readSubnetEnv(path)!;
      assert.deepEqual(r.env, env);
      assert.equal(r.warnings.length, 1);
      assert.ok(r.warnings[0].startsWith(`${path}:`), r.warnings[0]);
      assert.match(r.warnings[0], re);
      assert.doesNotMatch(r.warnings[0], /SECRET/);
    }
  });
  it('does not follow a symlink planted in place of the file', () => {
    const target = join(dir, 'secret');
    writeFileSync(target, 'FLANNEL_SUBNET=10.5.9.0/24\n');
    const path = join(dir, 'planted.env');
    symlinkSync(target, path);
    assert.deepEqual(readSubnetEnv(path), { env: {}, warnings: [`${path} is a symlink; not following it`] });
    writeSubnetEnv(path, env);
    assert.equal(readFileSync(target, 'utf8'), 'FLANNEL_SUBNET=10.5.9.0/24\n', 'the write replaced the link, not its target');
  });

  it('formatSubnetEnv is what writeSubnetEnv writes', () => {
    const path = join(dir, 'same.env');
    writeSubnetEnv(path, env);
    assert.equal(readFileSync(path, 'utf8'), formatSubnetEnv(env));
  });
});

// ---- acquisition -------------------------------------------------------

const log = silentLogger();
const ME: LeaseAttrs = { publicIp: parseIp4('192.168.64.3'), backend: { type: 'vxlan', vni: 1, vtepMac: '02:00:00:00:00:03' } };
const other = (n: number): LeaseAttrs => ({ publicIp: parseIp4(`192.168.64.${100 + n}`), backend: { type: 'udp' } });
const attrsOf = (l: LeaseAttrs | undefined) => (l ? { publicIp: l.publicIp, backend: l.backend } : l);
const getLease = async (store: LeaseStore, subnet: Cidr4) => (await store.listLeases()).leases.find((l) => fmt(l.subnet) === fmt(subnet));
const cfg16 = loadNetConf('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}');
const opts = (o: Partial<Parameters<typeof acquireLease>[3]> = {}) => ({ ttlSeconds: 86400, log, random: () => 0.5, ...o });

/** Deterministic [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('isCompatible and the free walk', () => {
  it('a subnet fits when inside SubnetMin..SubnetMax with the configured length', () => {
    assert.equal(isCompatible(cfg16, C('10.5.1.0/24')), true);
    assert.equal(isCompatible(cfg16, C('10.5.255.0/24')), true);
    assert.equal(isCompatible(cfg16, C('10.5.0.0/24')), false); // the skipped first subnet
    assert.equal(isCompatible(cfg16, C('10.6.1.0/24')), false);
    assert.equal(isCompatible(cfg16, C('10.5.1.0/25')), false);
  });
  it('the defaults of a /28 leave exactly three /30s (the first is skipped, the last is used)', () => {
    const cfg = loadNetConf('{"Network":"10.9.0.0/28"}');
    assert.deepEqual(freeSubnets(cfg, []).map(fmt), ['10.9.0.4/30', '10.9.0.8/30', '10.9.0.12/30']);
  });
  it('collects at most the first 100 free subnets from SubnetMin', () => {
    const free = freeSubnets(cfg16, []);
    assert.equal(free.length, 100);
    assert.deepEqual([fmt(free[0]), fmt(free[99])], ['10.5.1.0/24', '10.5.100.0/24']);
  });
  it('a lease of another length blocks every subnet it overlaps', () => {
    const free = freeSubnets(cfg16, [{ subnet: C('10.5.0.0/22'), ...other(1), expiration: null }], 3);
    assert.deepEqual(free.map(fmt), ['10.5.4.0/24', '10.5.5.0/24', '10.5.6.0/24']);
  });
});

describe('acquireLease', () => {
  it('renews the lease already carrying our PublicIP, with our new attrs', async () => {
    const now = 1_700_000_000_000;
    const store = new MemoryLeaseStore(() => now);
    store.put(C('10.5.7.0/24'), { ...ME, backend: { type: 'vxlan', vni: 1, vtepMac: '02:00:00:00:00:99' } }, 60);
    store.put(C('10.5.8.0/24'), other(1));
    store.calls.length = 0;
    const lease = await acquireLease(store, cfg16, ME, opts({ previousSubnet: C('10.5.9.0/24') }));
    assert.equal(fmt(lease.subnet), '10.5.7.0/24');
    assert.deepEqual(attrsOf(lease), ME);
    assert.equal(lease.expiration?.getTime(), now + 86400_000);
    assert.deepEqual(store.calls, ['update 10.5.7.0/24 ttl=86400']);
    assert.deepEqual(attrsOf(await getLease(store, C('10.5.7.0/24'))), ME);
  });
  it('keeps a reservation a reservation (renewed without TTL)', async () => {
    const store = new MemoryLeaseStore();
    store.put(C('10.5.7.0/24'), ME, 0);
    store.calls.length = 0;
    const lease = await acquireLease(store, cfg16, ME, opts());
    assert.equal(fmt(lease.subnet), '10.5.7.0/24');
    assert.equal(lease.expiration, null);
    assert.deepEqual(store.calls, ['update 10.5.7.0/24 ttl=0']);
  });
  it('deletes our lease when it no longer fits the config, then allocates', async () => {
    const store = new MemoryLeaseStore();
    store.put(C('10.5.0.0/24'), ME); // below SubnetMin
    store.put(C('10.5.1.0/25'), ME); // wrong length
    store.calls.length = 0;
    const lease = await acquireLease(store, cfg16, ME, opts({ random: () => 0 }));
    assert.equal(fmt(lease.subnet), '10.5.1.0/24');
    assert.deepEqual(store.calls, ['delete 10.5.0.0/24', 'delete 10.5.1.0/25', 'create 10.5.1.0/24 ttl=86400']);
  });
  it('prefers a compatible own lease over deleting an incompatible one listed first', async () => {
    const store = new MemoryLeaseStore();
    store.put(C('10.5.0.0/24'), ME);
    store.put(C('10.5.3.0/24'), ME);
    store.calls.length = 0;
    assert.equal(fmt((await acquireLease(store, cfg16, ME, opts())).subnet), '10.5.3.0/24');
    assert.deepEqual(store.calls, ['update 10.5.3.0/24 ttl=86400']);
  });
  it('reuses the previous subnet from subnet.env when nobody holds it', async () => {
    const store = new MemoryLeaseStore();
    store.put(C('10.5.41.0/24'), other(1));
    store.calls.length = 0;
    const lease = await acquireLease(store, cfg16, ME, opts({ previousSubnet: C('10.5.42.0/24') }));
    assert.equal(fmt(lease.subnet), '10.5.42.0/24');
    assert.deepEqual(store.calls, ['create 10.5.42.0/24 ttl=86400']);
  });
  it('skips the previous subnet when another node, a reservation or an overlapping lease holds it', async () => {
    for (const [held, ttl] of [['10.5.42.0/24', 86400], ['10.5.42.0/24', 0], ['10.5.40.0/22', 86400]] as const) {
      const store = new MemoryLeaseStore();
      store.put(C(held), other(1), ttl);
      const lease = await acquireLease(store, cfg16, ME, opts({ previousSubnet: C('10.5.42.0/24') }));
      assert.notEqual(fmt(lease.subnet), '10.5.42.0/24', held);
      assert.equal(isCompatible(cfg16, lease.subnet), true);
    }
  });
  it('ignores a previous subnet outside the config', async () => {
    for (const prev of ['10.6.42.0/24', '10.5.0.0/24', '10.5.42.0/25']) {
      const store = new MemoryLeaseStore();
      const lease = await acquireLease(store, cfg16, ME, opts({ previousSubnet: C(prev), random: () => 0 }));
      assert.equal(fmt(lease.subnet), '10.5.1.0/24', prev);
    }
  });
  it('picks at random among the first 100 free subnets', async () => {
    const pick = async (r: number) => fmt((await acquireLease(new MemoryLeaseStore(), cfg16, ME, opts({ random: () => r }))).subnet);
    assert.equal(await pick(0), '10.5.1.0/24');
    assert.equal(await pick(0.5), '10.5.51.0/24');
    assert.equal(await pick(0.999999), '10.5.100.0/24');
  });
  it('an expired lease is free again', async () => {
    let now = 1_000_000;
    const store = new MemoryLeaseStore(() => now);
    store.put(C('10.9.0.4/30'), other(1), 10);
    store.put(C('10.9.0.8/30'), other(2), 0);
    store.put(C('10.9.0.12/30'), other(3));
    const cfg = loadNetConf('{"Network":"10.9.0.0/28"}');
    await assert.rejects(acquireLease(store, cfg, ME, opts()), { message: 'out of subnets' });
    now += 11_000;
    assert.equal(fmt((await acquireLease(store, cfg, ME, opts())).subnet), '10.9.0.4/30');
  });
  it('"out of subnets" when every subnet is held', async () => {
    const cfg = loadNetConf('{"Network":"10.9.0.0/28"}');
    const store = new MemoryLeaseStore();
    for (const [i, s] of ['10.9.0.4/30', '10.9.0.8/30', '10.9.0.12/30'].entries()) store.put(C(s), other(i), i === 0 ? 0 : 86400);
    store.calls.length = 0;
    await assert.rejects(acquireLease(store, cfg, ME, opts()), { message: 'out of subnets' });
    assert.deepEqual(store.calls, [], 'nothing written');
    // An inverted SubnetMin/SubnetMax (flannel accepts it) leaves nothing to pick either.
    const inverted = loadNetConf('{"Network":"10.5.0.0/16","SubnetMin":"10.5.9.0","SubnetMax":"10.5.8.0"}');
    await assert.rejects(acquireLease(new MemoryLeaseStore(), inverted, ME, opts()), { message: 'out of subnets' });
  });
  it('retries after losing the create race to another node', async () => {
    const store = new MemoryLeaseStore();
    let raced = false;
    store.beforeCreate = (sn) => {
      if (!raced) {
        raced = true;
        store.put(sn, other(7)); // another node got there between our list and our create
      }
    };
    const lease = await acquireLease(store, cfg16, ME, opts({ random: () => 0 }));
    assert.equal(fmt(lease.subnet), '10.5.2.0/24');
    assert.deepEqual(store.calls, ['create 10.5.1.0/24 ttl=86400', 'create 10.5.2.0/24 ttl=86400']);
    assert.equal((await getLease(store, C('10.5.1.0/24')))?.publicIp, other(7).publicIp);
  });
  it("gives up after 10 lost races with flannel's message", async () => {
    const store = new MemoryLeaseStore();
    let n = 0;
    store.beforeCreate = (sn) => store.put(sn, other(n++));
    await assert.rejects(acquireLease(store, cfg16, ME, opts()), { message: 'max retries reached trying to acquire a subnet' });
    assert.equal(store.calls.filter((c) => c.startsWith('create')).length, 10);
  });
  it('passes other store errors through without retrying', async () => {
    const store = new MemoryLeaseStore();
    store.beforeCreate = () => {
      throw new Error('etcdserver: request timed out');
    };
    await assert.rejects(acquireLease(store, cfg16, ME, opts()), { message: 'etcdserver: request timed out' });
  });

  it('never returns a reserved, taken or overlapped subnet (600 random stores)', async () => {
    const random = seeded(42);
    const int = (n: number) => Math.floor(random() * n);
    // A /24 cut into /28s: 15 usable, so stores are often full or nearly so.
    const cfg = loadNetConf('{"Network":"10.8.0.0/24","SubnetLen":28}');
    const now = 5_000_000;
    let outOfSubnets = 0;
    for (let round = 0; round < 600; round++) {
      const store = new MemoryLeaseStore(() => now);
      const held: Cidr4[] = [];
      for (let i = 4 + int(28); i > 0; i--) {
        const len = [28, 28, 28, 27, 29, 26][int(6)];
        const size = 2 ** (32 - len);
        const sn = { ip: cfg.Network.ip + int(256 / size) * size, prefixLen: len };
        if (store.entries.has(subnetKey(sn))) continue;
        const kind = int(4); // 0 reservation, 1 expired, 2-3 live
        store.put(sn, other(i), kind === 0 ? 0 : kind === 1 ? 1 : 86400);
        if (kind !== 1) held.push(sn);
        else store.entries.get(subnetKey(sn))!.expiresAt = now - 1;
      }
      const previousSubnet = random() < 0.5 ? { ip: cfg.Network.ip + int(16) * 16, prefixLen: 28 } : null;
      const overlapsHeld = (sn: Cidr4) => held.some((h) => {
        const m = Math.min(h.prefixLen, sn.prefixLen);
        return h.ip >>> (32 - m) === sn.ip >>> (32 - m);
      });
      let lease;
      try {
        lease = await acquireLease(store, cfg, ME, opts({ previousSubnet, random }));
      } catch (e) {
        assert.equal((e as Error).message, 'out of subnets');
        outOfSubnets++;
        for (let ip = cfg.SubnetMin; ip <= cfg.SubnetMax; ip += 16) assert.ok(overlapsHeld({ ip, prefixLen: 28 }), `round ${round}: a free subnet was missed`);
        continue;
      }
      assert.equal(isCompatible(cfg, lease.subnet), true, `round ${round}: ${fmt(lease.subnet)}`);
      assert.equal(overlapsHeld(lease.subnet), false, `round ${round}: ${fmt(lease.subnet)} was held`);
      if (previousSubnet && isCompatible(cfg, previousSubnet) && !overlapsHeld(previousSubnet)) {
        assert.equal(fmt(lease.subnet), fmt(previousSubnet), `round ${round}: the free previous subnet was not reused`);
      }
    }
    assert.ok(outOfSubnets > 30 && outOfSubnets < 570, `both outcomes exercised (${outOfSubnets} full)`);
  });
});

describe('renewDelayMs', () => {
  it('is the time until expiration minus the margin, never negative', () => {
    const now = 1_000_000_000;
    assert.equal(renewDelayMs(new Date(now + 24 * 3600_000), 60, now), 23 * 3600_000);
    assert.equal(renewDelayMs(new Date(now + 30 * 60_000), 60, now), 0);
    assert.equal(renewDelayMs(new Date(now - 1), 1, now), 0);
  });
});
