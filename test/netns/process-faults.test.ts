// Process faults, on etcd (its own host, as in a cluster): a daemon killed
// with SIGKILL under traffic and started again, and SIGTERM at many moments
// of start-up.
//
//   etcd 192.168.77.100
//      |
//   ===br0=======================================
//      |                               |
//   node1 .1 weft (kill -9, restart)   node2 .2 weft
//      |                               |
//   pod1 <--- ping -D -i 0.02 --------- pod2
//
// kill -9: the TUN is not persistent, so the kernel takes it and its route
// away with the process; the restarted daemon finds its lease by PublicIP
// (same subnet, same VtepMAC, so node2's entry for it stays valid) and the
// path is back as soon as its TUN is. SIGTERM during start-up: whether weft
// is waiting for a config that is not in etcd yet or half way through
// lease, TUN and subnet.env, it exits 0 at once and leaves no TUN, route or
// status socket (the lease, if it got one, is kept for the restart, as a
// normal stop keeps it).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { formatCidr4 } from '../../src/cidr';
import { DaemonProcess } from '../../lab/daemon-process';
import { etcdctl, etcdctlGet } from '../../lab/etcd';
import { ETCD_PREFIX, EtcdLab } from '../../lab/etcd-cluster';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping } from '../../lab/overlay';
import type { LabNode } from '../../lab/topology';

const PREFIX = runPrefix('wpf');
after(() => deleteNamespaces(PREFIX));

const CONFIG = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };
const key = (subnet: string) => `${ETCD_PREFIX}/subnets/${subnet.replace('/', '-')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every lease in etcd: subnet key -> its JSON value. */
async function leases(el: EtcdLab): Promise<Map<string, { PublicIP: string; BackendData?: { VtepMAC?: string } }>> {
  const lines = (await etcdctl(el.endpoint, ['get', '--prefix', '--', `${ETCD_PREFIX}/subnets/`], el.ctl)).split('\n').filter(Boolean);
  const out = new Map();
  for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i], JSON.parse(lines[i + 1]));
  return out;
}

function flannelLinks(n: LabNode): string[] {
  return n.ns
    .ip('-o', 'link', 'show')
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((name): name is string => !!name && name.startsWith('flannel'));
}

function networkRoutes(n: LabNode): string[] {
  return n.ns.ip('route', 'show', 'exact', CONFIG.Network).split('\n').filter(Boolean);
}

/** SIGTERM, then the exit: code, signal and how long it took (SIGKILL after 10 s). */
async function terminate(d: DaemonProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = Date.now();
  d.child.kill('SIGTERM');
  const killer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
  const code = await d.exited;
  clearTimeout(killer);
  return { code, signal: d.child.signalCode, ms: Date.now() - t0 };
}

/** weft's last JSON log message before it received SIGTERM: the start-up stage it was in. */
function stageAtSignal(d: DaemonProcess): string {
  const msgs = d
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return (JSON.parse(l) as { msg: string }).msg;
      } catch {
        return '';
      }
    });
  const at = msgs.findIndex((m) => /received SIGTERM/.test(m));
  return at < 0 ? '(no weft log yet)' : at === 0 ? '(nothing logged before)' : msgs[at - 1].slice(0, 70);
}

/** Resolves as soon as weft logs a message matching re (polled every 5 ms). */
async function untilLogged(d: DaemonProcess, re: RegExp, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const l of d.logs().split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        if (re.test((JSON.parse(l) as { msg: string }).msg)) return;
      } catch {
        // a line being written
      }
    }
    if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`weft exited before logging ${re}:\n${d.logs()}`);
    if (Date.now() > deadline) throw new Error(`weft did not log ${re} within ${ms} ms:\n${d.logs()}`);
    await sleep(5);
  }
}

function assertNothingLeft(n: LabNode, d: DaemonProcess, what: string): void {
  assert.deepEqual(flannelLinks(n), [], `${what}: no TUN left`);
  assert.deepEqual(networkRoutes(n), [], `${what}: no route for the Network left`);
  assert.doesNotMatch(n.ns.ip('route', 'show'), /flannel/, `${what}: no route via a flannel device`);
  assert.ok(!fs.existsSync(d.socket), `${what}: no status socket left`);
}

describe('weft daemon process faults (etcd store)', () => {
  it('kill -9 under traffic, restart: same subnet, path back within 2 s, one TUN, one route', { timeout: 120_000 }, async (t) => {
    const el = await EtcdLab.create(`${PREFIX}k`, 2);
    const daemons: DaemonProcess[] = [];
    try {
      await el.putConfig(CONFIG);
      for (const node of el.lab.nodes) daemons.push(el.daemon(node));
      for (const d of daemons) await d.waitReady();
      await DaemonProcess.converged(daemons);
      for (const d of daemons) el.lab.wirePod(d.opts.node, formatCidr4(d.subnetEnv().subnet!), d.subnetEnv().mtu!);
      const [n1, n2] = el.lab.nodes;
      const before = await daemons[0].status();
      const envBefore = fs.readFileSync(daemons[0].subnetFile, 'utf8');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3);

      // -D: each reply with its arrival time, to time the gap against our clock.
      const prober = n2.pod.spawn('ping', ['-D', '-n', '-i', '0.02', '-W', '1', '-c', '500', n1.podIp]);
      let out = '';
      prober.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const probeDone = new Promise<void>((r) => prober.once('exit', () => r()));
      const probeKiller = setTimeout(() => prober.kill('SIGKILL'), 60_000);
      await sleep(2_000);

      const tKill = Date.now() / 1000;
      await daemons[0].kill9();
      assert.equal(daemons[0].child.signalCode, 'SIGKILL');
      await sleep(1_000);
      const tRestart = Date.now() / 1000;
      daemons[0] = el.daemon(n1);
      const after = await daemons[0].waitReady();
      const tReady = Date.now() / 1000;
      clearTimeout(probeKiller);
      await probeDone;

      const replies = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/gm)].map((m) => ({ at: Number(m[1]), seq: Number(m[2]) }));
      const beforeKill = replies.filter((r) => r.at < tKill);
      const whileDown = replies.filter((r) => r.at > tKill + 0.5 && r.at < tRestart);
      const back = replies.find((r) => r.at >= tRestart);
      assert.ok(beforeKill.length > 50, `traffic flowed before the kill (${beforeKill.length} replies)`);
      assert.equal(whileDown.length, 0, 'no replies while node1 had no daemon (the kill took the path down)');
      assert.ok(back, `the path came back:\n${out.slice(-500)}`);
      const gap = back.at - tRestart;
      const lastSeq = replies[replies.length - 1].seq;
      const lostAfter = lastSeq - back.seq + 1 - replies.filter((r) => r.seq >= back.seq).length;
      t.diagnostic(`restart -> ready ${(tReady - tRestart).toFixed(2)} s; restart -> first reply ${gap.toFixed(2)} s; ${lostAfter} lost after that`);
      assert.ok(gap <= 2, `path back ${gap.toFixed(2)} s after the restart command`);
      assert.equal(lostAfter, 0, 'steady once back');

      assert.equal(after.subnet, before.subnet, 'same subnet');
      assert.equal(after.vtepMac, before.vtepMac, 'same VtepMAC');
      assert.equal(fs.readFileSync(daemons[0].subnetFile, 'utf8'), envBefore, 'same subnet.env');
      const kv = await etcdctlGet(el.endpoint, key(before.subnet), el.ctl);
      assert.ok(kv, 'the lease key is there');
      assert.equal(JSON.parse(kv.value.toString()).BackendData.VtepMAC, before.vtepMac);
      const ours = [...(await leases(el))].filter(([, v]) => v.PublicIP === n1.underlayIp).map(([k]) => k);
      assert.deepEqual(ours, [key(before.subnet)], "exactly one lease with node1's PublicIP");
      assert.deepEqual(flannelLinks(n1), ['flannel.1'], 'exactly one TUN');
      const routes = networkRoutes(n1);
      assert.equal(routes.length, 1, `exactly one route for the Network: ${routes.join(' | ')}`);
      assert.match(routes[0], /dev flannel\.1/);
      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3, 'pod1 -> pod2 after the restart');
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });

  it('SIGTERM while waiting for a config not yet in etcd: exit 0 at once, nothing made', { timeout: 120_000 }, async (t) => {
    const el = await EtcdLab.create(`${PREFIX}w`, 1);
    const [n1] = el.lab.nodes;
    const daemons: DaemonProcess[] = [];
    try {
      for (const delay of [0, 50, 150, 300, 600, 1000, 2500]) {
        fs.rmSync(path.join(el.dir, `node${n1.index}`, 'daemon.log'), { force: true }); // one log per run
        const d = el.daemon(n1);
        daemons.push(d);
        await sleep(delay);
        const { code, signal, ms } = await terminate(d);
        const stage = stageAtSignal(d);
        t.diagnostic(`SIGTERM ${delay} ms after spawn: ${signal ?? `exit ${code}`} in ${ms} ms; was at: ${stage}`);
        // Before weft installs its handler (node still booting, nothing made) the
        // default action kills it; from its first log line on it must exit 0.
        if (signal === 'SIGTERM') assert.equal(stage, '(no weft log yet)', `killed by the signal though weft was running:\n${d.logs()}`);
        else assert.equal(code, 0, `exit code after SIGTERM at ${delay} ms:\n${d.logs()}`);
        assert.ok(ms < 2_000, `exited ${ms} ms after SIGTERM`);
        if (delay >= 1000) assert.match(d.logs(), /flannel config not found in etcd store/, 'it was waiting for the config');
        assertNothingLeft(n1, d, `SIGTERM at ${delay} ms`);
        assert.deepEqual([...(await leases(el)).keys()], [], 'no lease taken');
      }
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });

  it('SIGTERM at every stage of a real start-up: exit 0 at once, no TUN, route or socket, and a clean start after', { timeout: 240_000 }, async (t) => {
    const el = await EtcdLab.create(`${PREFIX}s`, 1);
    const [n1] = el.lab.nodes;
    const daemons: DaemonProcess[] = [];
    const failures: string[] = [];
    try {
      await el.putConfig(CONFIG);
      const first = el.daemon(n1);
      daemons.push(first);
      await first.waitReady();
      assert.equal((await terminate(first)).code, 0);
      // SIGTERM the moment weft logs each start-up step (it lands at the step's
      // next await), in both start-ups: renewing the lease it finds, or making a
      // new one from nothing; and at fixed delays, for node's own boot.
      const steps: Array<[RegExp | number, boolean]> = [];
      for (const fresh of [false, true]) {
        const lease = fresh ? [/^picked subnet/, /^allocated lease/] : [/^reusing VtepMAC/, /^found lease .* reusing/];
        for (const re of [/^using interface/, ...lease, /^acquired lease/, /^data plane up/, /^wrote /, /^ready$/]) steps.push([re, fresh]);
      }
      for (const ms of [0, 100, 300]) steps.push([ms, false]);
      for (const [step, fresh] of steps) {
        if (fresh) {
          for (const [k, v] of await leases(el)) if (v.PublicIP === n1.underlayIp) await etcdctl(el.endpoint, ['del', '--', k], el.ctl);
          fs.rmSync(first.subnetFile, { force: true });
        }
        fs.rmSync(first.logFile, { force: true }); // one log per run: the stage is read from it
        const d = el.daemon(n1);
        daemons.push(d);
        const what = `SIGTERM ${typeof step === 'number' ? `${step} ms after spawn` : `at ${step}`}${fresh ? ' (fresh)' : ''}`;
        if (typeof step === 'number') await sleep(step);
        else await untilLogged(d, step, 20_000);
        const { code, signal, ms } = await terminate(d);
        const stage = stageAtSignal(d);
        t.diagnostic(`${what}: ${signal ?? `exit ${code}`} in ${ms} ms; last step before the signal: ${stage}`);
        // Collect rather than stop at the first: which steps fail is the finding.
        try {
          if (signal === 'SIGTERM') assert.equal(stage, '(no weft log yet)', 'killed by the signal though weft was running');
          else assert.equal(code, 0, `exit code ${code}: ${d.logs().split('\n').find((l) => l.startsWith('weft: ')) ?? d.logs().trim().split('\n').pop()}`);
          assert.ok(ms < 2_000, `exited ${ms} ms after SIGTERM`);
          assertNothingLeft(n1, d, what);
        } catch (err) {
          failures.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
        }
        const ours = [...(await leases(el))].filter(([, v]) => v.PublicIP === n1.underlayIp);
        assert.ok(ours.length <= 1, `at most one lease for node1: ${ours.map(([k]) => k).join(', ')}`);
      }
      // Whatever was left must not be in the way: a normal start works.
      const last = el.daemon(n1);
      daemons.push(last);
      const s = await last.waitReady();
      assert.deepEqual(flannelLinks(n1), ['flannel.1']);
      assert.equal(networkRoutes(n1).length, 1);
      assert.equal([...(await leases(el))].filter(([, v]) => v.PublicIP === n1.underlayIp).length, 1);
      assert.match(s.subnet, /^10\.244\.\d+\.0\/24$/);
      assert.deepEqual(failures, [], failures.join('\n'));
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await el.destroy();
    }
  });
});
