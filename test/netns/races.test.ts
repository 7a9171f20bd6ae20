// Races: twelve daemons started at once against one store that has room for
// exactly twelve subnets (10.244.1.0 .. 10.244.12.0), then a thirteenth.
// Run on both stores: the embedded SQLite file shared by every node (one
// host's namespaces), and etcd on a host of its own.
//
//                 etcd 192.168.77.100 (etcd run) | leases.db in one temp dir (SQLite run)
//                        |
//   ===br0========================================================
//     |        |        |               |          |
//   node1 .1  node2 .2  ...  node12 .12        node13 .13
//   weft      weft           weft              weft: out of subnets
//
// The store's create-if-absent is the only arbiter: each loser lists again
// and picks again. Every racer must end with a subnet of its own, none may
// crash, and each must see the other eleven as peers. The thirteenth must
// fail with flannel's `out of subnets` and touch nothing on its node.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { formatIp4, parseCidr4 } from '../../src/cidr';
import { DaemonProcess } from '../../lab/daemon-process';
import { etcdctl } from '../../lab/etcd';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { Lab, type LabNode } from '../../lab/topology';
import { silentLogger } from '../../src/log';
import { SqliteStore } from '../../src/store/sqlite';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wra');
let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`))));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(dir, { recursive: true, force: true });
});

const RACERS = 12;
const CONFIG = { Network: '10.244.0.0/16', SubnetMin: '10.244.1.0', SubnetMax: `10.244.${RACERS}.0`, Backend: { Type: 'vxlan' } };
const READY_MS = 90_000; // twelve node processes booting at once on two cores

/** Starts the racers together, checks the outcome, then the thirteenth. */
async function race(
  t: { diagnostic(msg: string): void },
  nodes: LabNode[],
  spawn: (n: LabNode) => DaemonProcess,
  leaseOwners: () => Promise<Map<string, string>>, // subnet -> PublicIP
  daemons: DaemonProcess[],
): Promise<void> {
  const racers = nodes.slice(0, RACERS);
  const t0 = Date.now();
  for (const n of racers) daemons.push(spawn(n)); // no await between them: all at once
  const statuses = await Promise.all(daemons.map((d) => d.waitReady(READY_MS)));
  t.diagnostic(`${RACERS} daemons ready in ${Date.now() - t0} ms`);

  const retries = daemons.map((d) => (d.logs().match(/was taken by another node meanwhile, retrying/g) ?? []).length);
  t.diagnostic(`lost create races per daemon: ${retries.join(' ')}`);
  const subnets = statuses.map((s) => s.subnet);
  assert.equal(new Set(subnets).size, RACERS, `distinct subnets: ${subnets.join(' ')}`);
  for (const s of subnets) {
    const third = (parseCidr4(s).ip >>> 8) & 255;
    assert.ok(/^10\.244\.\d+\.0\/24$/.test(s) && third >= 1 && third <= RACERS, `${s} inside SubnetMin..SubnetMax`);
  }
  for (const [i, d] of daemons.entries()) {
    assert.equal(d.child.exitCode, null, `daemon ${i + 1} still running`);
    assert.equal(formatSubnet(d), subnets[i], `node${i + 1}'s subnet.env names its lease`);
    assert.doesNotMatch(d.logs(), /"level":(50|60)/, `node${i + 1} logged no error`);
  }
  const owners = await leaseOwners();
  assert.equal(owners.size, RACERS, 'twelve leases in the store');
  for (const [i, n] of racers.entries()) assert.equal(owners.get(subnets[i]), n.underlayIp, `the lease of ${subnets[i]} is node${i + 1}'s`);
  for (const [i, d] of daemons.entries()) {
    await until(`node${i + 1} sees the other ${RACERS - 1} as peers`, 15_000, async () => {
      const peers = (await d.status()).peers.map((p) => p.subnet).sort();
      return JSON.stringify(peers) === JSON.stringify(subnets.filter((_, j) => j !== i).sort());
    });
  }

  // The thirteenth: the pool is full.
  const n13 = nodes[RACERS];
  const late = spawn(n13);
  daemons.push(late);
  const killer = setTimeout(() => late.child.kill('SIGKILL'), 30_000);
  const code = await late.exited;
  clearTimeout(killer);
  const lastLine = late.logs().trim().split('\n').pop()!;
  t.diagnostic(`the thirteenth exited ${code}: ${lastLine}`);
  assert.notEqual(code, 0, 'the thirteenth exits non-zero');
  assert.equal(late.child.signalCode, null, 'on its own, not killed');
  assert.doesNotMatch(n13.ns.ip('link', 'show'), /flannel/, 'no TUN left on node13');
  assert.doesNotMatch(n13.ns.ip('route', 'show'), /10\.244\./, 'no route left on node13');
  assert.ok(!fs.existsSync(late.subnetFile), 'no subnet.env on node13');
  assert.ok(![...(await leaseOwners()).values()].includes(n13.underlayIp), 'no lease for node13');
  for (const [i, d] of daemons.slice(0, RACERS).entries()) assert.equal(d.child.exitCode, null, `daemon ${i + 1} unaffected`);
  assert.equal(lastLine, 'weft: out of subnets', `its last line:\n${late.logs().slice(-1500)}`);
}

function formatSubnet(d: DaemonProcess): string {
  const s = d.subnetEnv().subnet!;
  return `${(s.ip >>> 24) & 255}.${(s.ip >>> 16) & 255}.${(s.ip >>> 8) & 255}.0/${s.prefixLen}`;
}

describe(`${RACERS} daemons racing for ${RACERS} subnets`, () => {
  it('on the embedded store (one SQLite file): distinct subnets, no crash; the 13th is out of subnets', { timeout: 300_000 }, async (t) => {
    const lab = Lab.create(`${PREFIX}s`, RACERS + 1);
    const db = path.join(dir, 'leases.db');
    const conf = path.join(dir, 'net-conf.json');
    fs.writeFileSync(conf, JSON.stringify(CONFIG));
    const daemons: DaemonProcess[] = [];
    try {
      const spawn = (n: LabNode) => DaemonProcess.spawn({ node: n, dir: path.join(dir, `node${n.index}`), args: ['--net-config-path', conf, '--store-path', db] });
      const owners = async () => {
        const store = new SqliteStore({ path: db, log: silentLogger() });
        try {
          return new Map((await store.listLeases()).leases.map((l) => [`${(l.subnet.ip >>> 24) & 255}.${(l.subnet.ip >>> 16) & 255}.${(l.subnet.ip >>> 8) & 255}.0/${l.subnet.prefixLen}`, formatIp4(l.publicIp)]));
        } finally {
          await store.close();
        }
      };
      await race(t, lab.nodes, spawn, owners, daemons);
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      lab.destroy();
    }
  });

  it('on etcd: distinct subnets, no crash; the 13th is out of subnets', { timeout: 300_000 }, async (t) => {
    const el = await EtcdLab.create(`${PREFIX}e`, RACERS + 1);
    const daemons: DaemonProcess[] = [];
    try {
      await el.putConfig(CONFIG);
      const owners = async () => {
        const lines = (await etcdctl(el.endpoint, ['get', '--prefix', '--', `${ETCD_PREFIX}/subnets/`], el.ctl)).split('\n').filter(Boolean);
        const out = new Map<string, string>();
        for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i].slice(`${ETCD_PREFIX}/subnets/`.length).replace('-', '/'), JSON.parse(lines[i + 1]).PublicIP);
        return out;
      };
      await race(t, el.lab.nodes, (n) => el.daemon(n), owners, daemons);
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });
});
