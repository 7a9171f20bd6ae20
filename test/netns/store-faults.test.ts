// Store faults on a real etcd: two weft daemons live through etcd stopped
// for 60 s, then through etcd wiped and restored by an operator.
//
//   etcd 192.168.77.100  (stopped, started, wiped)
//      |
//   ===br0===========================================
//      |                                 |
//   node1 .1 weft, cni0, flannel.1    node2 .2 weft, cni0, flannel.1
//      |                                 |
//   pod1 ---- ping -i 0.2, all through the outage ----> pod2
//
// Outage: the data plane keeps its last peer table, so no ping is lost; the
// daemon says so in a few log lines, burns no CPU retrying, and once etcd is
// back its watch resumes from its cursor (a lease written by hand right after
// the restart, before either daemon can reconnect, reaches both: the etcd
// host's port on br0 is down from the restart until that put) and its
// lease is renewed (--lease-ttl 30: renewal falls due during the outage).
// Wipe: etcd comes back empty, the operator puts the config back, and each
// daemon writes its lease again with the same subnet.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';

import { formatCidr4, parseCidr4 } from '../../src/cidr';
import { DaemonProcess } from '../../lab/daemon-process';
import { etcdctl, etcdctlGet, etcdctlLeaseGrant, etcdctlPut } from '../../lab/etcd';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping } from '../../lab/overlay';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wsf');
after(() => deleteNamespaces(PREFIX));

const OUTAGE_MS = 60_000;
const LEASE_TTL = 30;
const MAX_OUTAGE_LOG_LINES = 20;
const MAX_OUTAGE_CPU_S = 3;
const CONFIG = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };
const HAND = { subnet: '10.244.200.0/24', publicIp: '192.168.77.9', vtepMac: '0e:00:00:00:02:00' };

/** The etcd host's port on the underlay bridge: the peer of its eth0. */
function etcdPort(el: EtcdLab): string {
  const peer = /eth0@if(\d+)/.exec(el.etcdHost.ip('-o', 'link', 'show', 'eth0'))![1];
  const line = el.lab.underlay.ip('-o', 'link', 'show').split('\n').find((l) => l.startsWith(`${peer}: `))!;
  return /^\d+: ([^:@]+)/.exec(line)![1];
}

const key = (subnet: string) => `${ETCD_PREFIX}/subnets/${subnet.replace('/', '-')}`;
const flannelValue = (ip: string, mac: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

/** user + system CPU seconds of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface LogLine {
  time: number;
  msg: string;
}
function logLines(d: DaemonProcess): LogLine[] {
  const out: LogLine[] = [];
  for (const l of d.logs().split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as LogLine);
    } catch {
      // a line cut short by a crash
    }
  }
  return out;
}
const logged = (d: DaemonProcess, re: RegExp, since: number) => logLines(d).find((l) => l.time >= since && re.test(l.msg));

describe('weft daemons through etcd faults', () => {
  it('forward through a 60 s etcd outage, resume the watch, renew; re-create their leases on a wiped etcd', { timeout: 300_000 }, async (t) => {
    const el = await EtcdLab.create(`${PREFIX}a`, 2);
    const daemons: DaemonProcess[] = [];
    const timeline: string[] = [];
    const t0 = Date.now();
    const mark = (what: string) => timeline.push(`${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${what}`);
    try {
      await el.putConfig(CONFIG);
      for (const node of el.lab.nodes) daemons.push(el.daemon(node, ['--lease-ttl', String(LEASE_TTL)]));
      for (const d of daemons) await d.waitReady();
      await DaemonProcess.converged(daemons);
      for (const d of daemons) el.lab.wirePod(d.opts.node, formatCidr4(d.subnetEnv().subnet!), d.subnetEnv().mtu!);
      const [n1, n2] = el.lab.nodes;
      const subnets = daemons.map((d) => d.opts.node.subnet);
      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, 'the path works before the outage');
      mark('daemons ready, pods wired');

      // --- 60 s outage under a steady ping ---------------------------------
      const count = Math.ceil((3_000 + OUTAGE_MS + 15_000) / 200);
      const prober = n1.pod.spawn('ping', ['-n', '-i', '0.2', '-W', '1', '-c', String(count), n2.podIp]);
      let pingOut = '';
      prober.stdout!.on('data', (b: Buffer) => (pingOut += b.toString()));
      const pingDone = new Promise<void>((r) => prober.once('exit', () => r()));
      const pingKiller = setTimeout(() => prober.kill('SIGKILL'), count * 200 + 60_000);
      await new Promise((r) => setTimeout(r, 3_000));

      const leaseBefore = await Promise.all(subnets.map(async (s) => (await etcdctlGet(el.endpoint, key(s), el.ctl))!.lease));
      const logAtStop = daemons.map((d) => d.logs().length);
      const cpuAtStop = daemons.map((d) => cpuSeconds(d.child.pid!));
      const tStop = Date.now();
      await el.etcd.stop();
      mark('etcd stopped');
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      const outageLog = daemons.map((d, i) => d.logs().slice(logAtStop[i]));
      const outageCpu = daemons.map((d, i) => cpuSeconds(d.child.pid!) - cpuAtStop[i]);
      for (const [i, d] of daemons.entries()) {
        assert.equal(d.child.exitCode, null, `daemon ${i + 1} alive through the outage:\n${d.logs()}`);
        const lines = outageLog[i].split('\n').filter(Boolean);
        const kinds = new Map<string, number>();
        for (const l of lines) {
          const msg = /"msg":"([^"]{0,60})/.exec(l)?.[1] ?? l.slice(0, 60);
          kinds.set(msg, (kinds.get(msg) ?? 0) + 1);
        }
        mark(`node${i + 1}: ${lines.length} log lines, ${outageCpu[i].toFixed(2)} s CPU during the outage: ${[...kinds].map(([m, n]) => `${n} x '${m}'`).join(', ')}`);
        assert.ok(lines.some((l) => /etcd watch lost/.test(l)), `node${i + 1} logs the outage:\n${outageLog[i]}`);
        assert.ok(lines.length <= MAX_OUTAGE_LOG_LINES, `node${i + 1} logged ${lines.length} lines in ${OUTAGE_MS / 1000} s:\n${outageLog[i]}`);
        assert.ok(outageCpu[i] < MAX_OUTAGE_CPU_S, `node${i + 1} used ${outageCpu[i].toFixed(2)} s of CPU in the outage`);
      }

      // --- etcd back: a change made before the daemons reconnect -----------
      // etcd's host is off the underlay while etcd starts and the lease is
      // put (etcdctl runs on that host), so neither daemon can be back first.
      const port = etcdPort(el);
      el.lab.underlay.ip('link', 'set', port, 'down');
      try {
        await el.etcd.restart();
        mark('etcd healthy again (its host still cut off)');
        const grant = await etcdctlLeaseGrant(el.endpoint, 600, el.ctl);
        await etcdctlPut(el.endpoint, key(HAND.subnet), flannelValue(HAND.publicIp, HAND.vtepMac), { ...el.ctl, lease: grant });
      } finally {
        el.lab.underlay.ip('link', 'set', port, 'up');
      }
      const tUp = Date.now();
      const tPut = tUp;
      mark(`hand-written lease ${HAND.subnet} put; etcd's host back on the underlay`);
      for (const [i, d] of daemons.entries()) {
        await until(`node${i + 1} learns ${HAND.subnet}`, 15_000, async () => (await d.status()).peers.some((p) => p.subnet === HAND.subnet && p.vtepMac === HAND.vtepMac));
        mark(`node${i + 1} has ${HAND.subnet} as a peer`);
      }
      for (const [i, d] of daemons.entries()) {
        const resumed = await until(`node${i + 1} logs the watch resumed`, 15_000, async () => logged(d, /etcd watch resumed/, tStop));
        mark(`node${i + 1}: 'etcd watch resumed' logged`);
        assert.ok(resumed.time >= tPut, `node${i + 1}'s watch resumed after the lease was put, so it came from the resumed watch`);
      }
      for (const [i, d] of daemons.entries()) {
        const renewed = await until(`node${i + 1} renews its lease after the outage`, 30_000, async () => logged(d, /Lease renewed/, tUp));
        mark(`node${i + 1}: 'Lease renewed' logged`);
        assert.ok(renewed.time >= tUp);
        const kv = (await etcdctlGet(el.endpoint, key(subnets[i]), el.ctl))!;
        assert.ok(kv, `node${i + 1}'s lease key is there`);
        assert.notEqual(kv.lease, leaseBefore[i], `node${i + 1}'s key is held by a fresh etcd lease`);
        const ttl = await etcdctl(el.endpoint, ['lease', 'timetolive', BigInt(kv.lease).toString(16)], el.ctl);
        const remaining = Number(/remaining\((-?\d+)s\)/.exec(ttl)?.[1]);
        assert.ok(remaining > LEASE_TTL / 2, `node${i + 1}'s fresh lease has ${remaining} s left: ${ttl}`);
      }

      clearTimeout(pingKiller);
      await pingDone;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
      assert.ok(m, pingOut);
      mark(`ping pod1 -> pod2: ${m[1]} sent, ${m[2]} received`);
      assert.equal(Number(m[1]), count, 'the ping ran its whole course');
      assert.equal(Number(m[2]), Number(m[1]), `no ping lost across the outage:\n${pingOut.split('\n').slice(-4).join('\n')}`);
      for (const d of daemons) assert.doesNotMatch(d.logs(), /Lease has been revoked/);

      // --- etcd wiped: the operator restores the config --------------------
      const tWiped = Date.now();
      await el.etcd.stop();
      el.etcd.wipe();
      await el.etcd.restart();
      await el.putConfig(CONFIG);
      mark('etcd wiped, restarted, config put back');
      for (const [i, d] of daemons.entries()) {
        const kv = await until(`node${i + 1}'s lease ${subnets[i]} is written again`, 30_000, async () => (await etcdctlGet(el.endpoint, key(subnets[i]), el.ctl)) ?? undefined);
        mark(`node${i + 1}'s lease ${subnets[i]} back in etcd`);
        const attrs = JSON.parse(kv.value.toString());
        assert.equal(attrs.PublicIP, d.opts.node.underlayIp);
        assert.equal(attrs.BackendData.VtepMAC, (await d.status()).vtepMac, 'with the same VtepMAC');
        assert.notEqual(kv.lease, '0', 'held by an etcd lease, not a reservation');
        assert.ok(logged(d, /re-created|Lease renewed/, tWiped), `node${i + 1} says it wrote its lease again:\n${d.logs().slice(-2000)}`);
      }
      for (const [i, d] of daemons.entries()) {
        const other = subnets[1 - i];
        await until(`node${i + 1}'s peers are node${2 - i} only (the hand-written lease went with the wipe)`, 15_000, async () => {
          const peers = (await d.status()).peers.map((p) => p.subnet);
          return peers.length === 1 && peers[0] === other;
        });
        assert.equal(d.child.exitCode, null, `node${i + 1} still running`);
        assert.equal((await d.status()).subnet, subnets[i], 'same subnet');
        assert.equal(formatCidr4(d.subnetEnv().subnet!), formatCidr4(parseCidr4(subnets[i])), 'subnet.env unchanged');
      }
      const subnetKeys = (await etcdctl(el.endpoint, ['get', '--prefix', '--keys-only', '--', `${ETCD_PREFIX}/subnets/`], el.ctl)).split('\n').filter(Boolean);
      assert.deepEqual(subnetKeys.sort(), subnets.map(key).sort(), 'exactly the two leases, nothing else');
      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, 'pod1 -> pod2 after the wipe');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3, 'pod2 -> pod1 after the wipe');
      mark('pods ping both ways');
    } finally {
      for (const l of timeline) t.diagnostic(l);
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });
});
