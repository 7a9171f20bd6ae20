// What a node's supervisors read: /metrics in Prometheus' text format
// (parsed here by a parser this project did not write), counters that move
// with traffic, and systemd's READY=1 on NOTIFY_SOCKET, sent only once
// subnet.env is written, as flanneld sends it.
//
//   pod1 - node1 (weft d1: healthz 127.0.0.1:10281, NOTIFY_SOCKET) ==br0== node2 (weft d2) - pod2
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { DaemonProcess } from '../../lab/daemon-process';
import { deleteNamespaces, runPrefix } from '../../lab/netns';
import { ping } from '../../lab/overlay';
import { Lab } from '../../lab/topology';
import { until } from '../../lab/wait';

// A parser nobody here wrote (it has no types; its output is prom2json's shape).
const parsePrometheus = require('parse-prometheus-text-format') as (text: string) => Array<{
  name: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value: string }>;
}>;

const PREFIX = runPrefix('whl');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A systemd stand-in: a unix datagram socket that records each message and
 * whether the subnet file existed when it came. python3 is on every machine
 * that builds the addon (node-gyp needs it); node has no unix datagrams.
 */
function notifyListener(socket: string, subnetFile: string): { child: ChildProcess; messages: () => Array<{ msg: string; subnetEnv: boolean }> } {
  const script = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    m = s.recv(4096).decode()
    print(json.dumps({"msg": m, "subnetEnv": os.path.exists(sys.argv[2])}), flush=True)
`;
  const child = spawn('python3', ['-c', script, socket, subnetFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  return {
    child,
    messages: () => lines.map((l) => JSON.parse(l) as { msg?: string; subnetEnv: boolean; listening?: boolean }).filter((m) => m.msg !== undefined) as Array<{ msg: string; subnetEnv: boolean }>,
  };
}

describe('health, metrics and readiness', () => {
  it('/metrics parses as Prometheus text and moves with traffic; READY=1 comes once, after subnet.env', async () => {
    const lab = Lab.create(PREFIX, 2);
    const daemons: DaemonProcess[] = [];
    const sock = path.join(dir, 'notify.sock');
    const conf = path.join(dir, 'net-conf.json');
    fs.writeFileSync(conf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
    const args = ['--net-config-path', conf, '--store-path', path.join(dir, 'leases.db'), '--ip-masq'];
    const n1Dir = path.join(dir, 'n1');
    const listener = notifyListener(sock, path.join(n1Dir, 'subnet.env'));
    try {
      await until('the notify listener is bound', 5000, async () => fs.existsSync(sock));
      const [n1, n2] = lab.nodes;
      daemons.push(
        await DaemonProcess.start({
          node: n1,
          dir: n1Dir,
          args: [...args, '--healthz-ip', '127.0.0.1', '--healthz-port', '10281'],
          env: { NOTIFY_SOCKET: sock },
        }),
      );
      daemons.push(await DaemonProcess.start({ node: n2, dir: path.join(dir, 'n2'), args }));
      await DaemonProcess.converged(daemons);
      for (const d of daemons) lab.wirePodCni(d.opts.node, d.subnetFile);

      await until('READY=1 arrives', 5000, async () => listener.messages().length > 0);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(listener.messages(), [{ msg: 'READY=1', subnetEnv: true }], 'one READY=1, sent with subnet.env already written');

      const scrape = () => {
        const text = n1.ns.exec(process.execPath, [
          '-e',
          "require('http').get('http://127.0.0.1:10281/metrics', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(r.headers['content-type'] + '\\n' + b)); })",
        ]);
        const [type, ...body] = text.split('\n');
        assert.match(type, /^text\/plain; version=0\.0\.4/);
        return parsePrometheus(body.join('\n'));
      };
      const value = (families: ReturnType<typeof scrape>, name: string, labels: Record<string, string> = {}) => {
        const f = families.find((x) => x.name === name);
        assert.ok(f, `metric ${name} is there`);
        const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
        assert.ok(m, `${name}${JSON.stringify(labels)} is there`);
        return Number(m.value);
      };

      const before = scrape();
      for (const [name, type] of [
        ['weft_packets_total', 'COUNTER'],
        ['weft_bytes_total', 'COUNTER'],
        ['weft_drops_total', 'COUNTER'],
        ['weft_source_errors_total', 'COUNTER'],
        ['weft_peers', 'GAUGE'],
        ['weft_lease_expiry_timestamp_seconds', 'GAUGE'],
        ['weft_ready', 'GAUGE'],
      ] as const) {
        assert.equal(before.find((f) => f.name === name)?.type, type, `${name} is a ${type.toLowerCase()}`);
      }
      assert.equal(value(before, 'weft_ready'), 1);
      assert.equal(value(before, 'weft_peers', { via: 'engine' }), 1);
      assert.equal(value(before, 'weft_source_errors_total'), 0);
      assert.ok(value(before, 'weft_lease_expiry_timestamp_seconds') > Date.now() / 1000 + 3600, 'the lease ends in a day');
      assert.ok(before.find((f) => f.name === 'weft_drops_total')!.metrics.some((m) => m.labels?.reason === 'rx_inner_dst'), 'drops by reason');

      assert.equal(ping(n1.pod, n2.podIp, 10).received, 10);
      const afterPing = scrape();
      const tx = value(afterPing, 'weft_packets_total', { direction: 'tx' }) - value(before, 'weft_packets_total', { direction: 'tx' });
      const rx = value(afterPing, 'weft_packets_total', { direction: 'rx' }) - value(before, 'weft_packets_total', { direction: 'rx' });
      assert.ok(tx >= 10 && rx >= 10, `tx +${tx}, rx +${rx} after 10 pings`);
      assert.ok(value(afterPing, 'weft_bytes_total', { direction: 'tx' }) > value(before, 'weft_bytes_total', { direction: 'tx' }));
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      listener.child.kill('SIGKILL');
      lab.destroy();
    }
  });
});
