// Hostile input on the wire: a host on the underlay sprays node1's vxlan
// port with every kind of bad datagram, first paced (each must land in its
// drop counter) and then as fast as it can for 10 s, while two real peers
// keep pinging and the daemon's memory stays bounded.
//
//   attacker .66 (a "peer": it holds a lease) and .67 (not a peer)
//      |
//   ==br0== node1 .1 (weft daemon, pod1) -- node2 .2 (weft daemon, pod2)
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { formatCidr4, parseCidr4, parseIp4 } from '../../src/cidr';
import { DaemonProcess } from '../../lab/daemon-process';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { Lab } from '../../lab/topology';
import type { CounterName } from '../../src/native';
import { SqliteStore } from '../../src/store/sqlite';
import { silentLogger } from '../../src/log';

const PREFIX = runPrefix('wfl');
const FLOOD = path.resolve(__dirname, '..', '..', 'lab', 'udp-flood.js');
const ATTACKER = '192.168.77.66';
const STRANGER = '192.168.77.67';
// The bound this test states: the daemon's RSS may grow by at most this much under the flood.
const RSS_GROWTH_LIMIT_KB = 32 * 1024;
let dir = '';
after(() => {
  deleteNamespaces(PREFIX);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('flood of bad datagrams', () => {
  it('counts every bad datagram by reason, keeps forwarding, and keeps its memory', async (t) => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
    const lab = Lab.create(PREFIX, 2);
    const daemons: DaemonProcess[] = [];
    try {
      const attacker = lab.addHost('atk', ATTACKER);
      attacker.ip('addr', 'add', `${STRANGER}/24`, 'dev', 'eth0');
      const conf = path.join(dir, 'net-conf.json');
      fs.writeFileSync(conf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
      const db = path.join(dir, 'leases.db');
      // The attacker holds a lease, so its datagrams get past the peer check
      // and reach the parsers; .67 holds none.
      const store = new SqliteStore({ path: db, log: silentLogger() });
      await store.createLease(parseCidr4('10.244.250.0/24'), { publicIp: parseIp4(ATTACKER), backend: { type: 'vxlan', vni: 1, vtepMac: '02:de:ad:be:ef:01' } }, 3600);
      await store.close();

      const args = ['--net-config-path', conf, '--store-path', db];
      for (const node of lab.nodes) daemons.push(await DaemonProcess.start({ node, dir: path.join(dir, `n${node.index}`), args }));
      for (const d of daemons) {
        const env = d.subnetEnv();
        lab.wirePod(d.opts.node, formatCidr4(env.subnet!), env.mtu!);
      }
      const [n1, n2] = lab.nodes;
      const s1 = await daemons[0].status();
      assert.ok(s1.peers.some((p) => p.publicIp === ATTACKER));
      const pid = daemons[0].child.pid!;
      const spray = (extra: object, timeoutMs: number) =>
        JSON.parse(
          attacker.exec(process.execPath, [FLOOD, JSON.stringify({
            target: n1.underlayIp, port: 8472, peerIp: ATTACKER, strangerIp: STRANGER, vni: 1, mac: s1.vtepMac,
            innerSrc: '10.244.250.2', innerDst: n1.podIp, ...extra,
          })], timeoutMs),
        ) as { sent: Record<string, number>; total: number };
      const counters = async () => (await daemons[0].status()).counters!;
      const drops = (c: Awaited<ReturnType<typeof counters>>) =>
        Object.entries(c).filter(([k]) => k.startsWith('rx_drop_')).reduce((n, [, v]) => n + v.packets, 0);

      // 1. Paced: every datagram lands in its own drop reason, none delivered.
      const c0 = await counters();
      const N = 200;
      const exact = spray({ perCategory: N }, 60_000);
      await new Promise((r) => setTimeout(r, 500));
      const c1 = await counters();
      const delta = (k: CounterName) => c1[k].packets - c0[k].packets;
      for (const [name, n] of Object.entries(exact.sent)) assert.equal(n, N, `sent all ${name}`);
      for (const reason of ['rx_drop_wrong_vni', 'rx_drop_wrong_mac', 'rx_drop_bad_ethertype', 'rx_drop_bad_ihl', 'rx_drop_bad_length', 'rx_drop_unknown_peer'] as const) {
        assert.equal(delta(reason), N, reason);
      }
      t.diagnostic(JSON.stringify(Object.fromEntries(Object.keys(c1).map((k) => [k, delta(k as CounterName)]).filter(([, v]) => v))));
      // Random bytes are cut short or fail the flags check.
      assert.ok(delta('rx_drop_truncated') >= N && delta('rx_drop_bad_vxlan_flags') >= N);
      assert.equal(delta('rx_drop_truncated') + delta('rx_drop_bad_vxlan_flags'), 3 * N, 'truncated, bad flags and random');
      // oversized and fragmented both end as rx_drop_oversized.
      assert.equal(delta('rx_drop_oversized'), 2 * N, 'oversized and reassembled fragments');
      assert.equal(c1.rx_packets.packets - c0.rx_packets.packets, 0, 'nothing bad was delivered');
      assert.equal(drops(c1) - drops(c0), exact.total, 'every datagram counted exactly once');
      t.diagnostic(`paced: ${exact.total} datagrams, ${drops(c1) - drops(c0)} counted as drops`);

      // 2. Flood for 10 s while pod2 pings pod1.
      const rssBefore = rssKb(pid);
      const prober = n2.pod.spawn('ping', ['-n', '-q', '-i', '0.1', '-c', '110', '-W', '1', n1.podIp]);
      let pingOut = '';
      prober.stdout!.on('data', (d: Buffer) => (pingOut += d.toString()));
      const pingDone = new Promise((r) => prober.once('exit', r));
      const flood = spray({ seconds: 10 }, 60_000);
      await pingDone;
      await new Promise((r) => setTimeout(r, 500));
      const c2 = await counters();
      const rssAfter = rssKb(pid);
      const udpLine = n1.ns.exec('cat', ['/proc/net/udp']).split('\n').find((l) => /:2118 /.test(l.split(/\s+/)[2] ?? ''));
      const socketDrops = Number(udpLine?.trim().split(/\s+/).pop() ?? 0);
      const counted = drops(c2) - drops(c1);
      const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
      t.diagnostic(`flood: ${flood.total} datagrams in 10 s (${Math.round(flood.total / 10)}/s), ${counted} counted by weft, ${socketDrops} dropped by the socket buffer; ping ${m?.[2]}/${m?.[1]}; RSS ${rssBefore} -> ${rssAfter} kB`);

      assert.equal(daemons[0].child.exitCode, null, 'the daemon is alive');
      assert.ok(m && Number(m[2]) >= Number(m[1]) * 0.95, `ping kept answering: ${pingOut}`);
      assert.ok(counted <= flood.total, 'never counts more than was sent');
      assert.ok(counted + socketDrops >= flood.total * 0.98, `counted ${counted} + socket drops ${socketDrops} of ${flood.total}`);
      assert.equal(c2.rx_packets.packets - c1.rx_packets.packets >= 0, true);
      assert.ok(rssAfter - rssBefore <= RSS_GROWTH_LIMIT_KB, `RSS grew ${rssAfter - rssBefore} kB`);
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      lab.destroy();
    }
  });
});
