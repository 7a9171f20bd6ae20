// The daemon on its embedded store: start-up, restart, and bad input.
// One lab node (plus a second for the restart check), a temp dir per test.
//
//   node1 --br0-- node2      each: weft daemon, subnet.env in its own dir,
//                            one SQLite file shared (one host, several daemons)
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DaemonProcess } from '../../src/lab/daemon-process';
import { CLI } from '../../src/lab/engine-process';
import { deleteNamespaces, run, runPrefix } from '../../src/lab/netns';
import { ping } from '../../src/lab/overlay';
import { Lab } from '../../src/lab/topology';

const PREFIX = runPrefix('wdm');
let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`))));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(dir, { recursive: true, force: true });
});

function netConf(name: string, conf: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof conf === 'string' ? conf : JSON.stringify(conf));
  return file;
}

function nothingLeft(lab: Lab, nodeDir: string): void {
  const n = lab.nodes[0];
  assert.doesNotMatch(n.ns.ip('link', 'show'), /flannel/, 'no TUN left');
  assert.doesNotMatch(n.ns.ip('route', 'show'), /10\.244\./, 'no route left');
  assert.ok(!fs.existsSync(path.join(nodeDir, 'subnet.env')), 'no subnet.env written');
}

describe('weft daemon on the embedded store', () => {
  it('takes a lease, writes subnet.env in flannel format, and keeps subnet and VtepMAC across a restart', async () => {
    const lab = Lab.create(`${PREFIX}r`, 2);
    const store = path.join(dir, 'restart.db');
    const conf = netConf('restart.json', { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    const args = ['--net-config-path', conf, '--store-path', store];
    try {
      const [n1, n2] = lab.nodes;
      const d1 = await DaemonProcess.start({ node: n1, dir: path.join(dir, 'r1'), args: [...args, '--healthz-ip', '127.0.0.1', '--healthz-port', '10267'] });
      const d2 = await DaemonProcess.start({ node: n2, dir: path.join(dir, 'r2'), args });
      const s1 = await d1.status();
      const text = fs.readFileSync(d1.subnetFile, 'utf8');
      const sub = s1.subnet.split('/')[0].split('.').map(Number);
      assert.equal(
        text,
        `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${sub[0]}.${sub[1]}.${sub[2]}.${sub[3] + 1}/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`,
      );
      assert.match(s1.vtepMac!, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'locally administered unicast');
      assert.deepEqual((await d2.status()).peers, [{ subnet: s1.subnet, publicIp: n1.underlayIp, vtepMac: s1.vtepMac }]);

      for (const d of [d1, d2]) {
        const env = d.subnetEnv();
        lab.wirePod(d.opts.node, `${env.subnet!.ip >>> 24}.${(env.subnet!.ip >>> 16) & 255}.${(env.subnet!.ip >>> 8) & 255}.0/24`, env.mtu!);
      }
      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3);

      // flanneld's health endpoints, and `weft status` from the command line.
      const get = (url: string) =>
        n1.ns.exec(process.execPath, ['-e', `require('http').get('${url}', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(r.statusCode, b.trim())); })`]).trim();
      assert.equal(get('http://127.0.0.1:10267/healthz'), '200 ok');
      assert.equal(get('http://127.0.0.1:10267/readyz'), '200 ok');
      const status = run(process.execPath, [CLI, 'status', '--subnet-file', d1.subnetFile]);
      assert.match(status, new RegExp(`lease\\s+${s1.subnet.replace(/\./g, '\\.')}\\s+public IP ${n1.underlayIp.replace(/\./g, '\\.')}\\s+VtepMAC ${s1.vtepMac}`));
      assert.match(status, new RegExp(`peers \\(1\\)\\n\\s+${(await d2.status()).subnet.replace(/\./g, '\\.')}\\s+${n2.underlayIp.replace(/\./g, '\\.')}`));
      assert.match(status, /tx_packets\s+[1-9]\d*/);

      assert.equal(await d1.stop(), 0, 'SIGTERM exits 0');
      assert.doesNotMatch(n1.ns.ip('link', 'show'), /flannel\.1/, 'TUN removed on stop');
      const again = await DaemonProcess.start({ node: n1, dir: path.join(dir, 'r1'), args });
      const s1b = await again.status();
      assert.equal(s1b.subnet, s1.subnet, 'same subnet after restart');
      assert.equal(s1b.vtepMac, s1.vtepMac, 'same VtepMAC after restart');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3);
      await Promise.all([again.stop(), d2.stop()]);
    } finally {
      lab.destroy();
    }
  });

  describe('bad input exits non-zero naming the problem and leaves the node untouched', () => {
    // An --iface in a case replaces the lab's eth0 (the flag is a list).
    const cases: Array<[string, (conf: (c: unknown) => string) => string[], RegExp]> = [
      ['unparsable net-conf', (c) => ['--net-config-path', c('{"Network": "10.244.0.0/16",')], /net-conf-\d+\.json: .*JSON/i],
      ['net-conf without Network', (c) => ['--net-config-path', c({ Backend: { Type: 'vxlan' } })], /please define a correct Network parameter in the flannel config/],
      ['SubnetLen 31', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16', SubnetLen: 31 })], /SubnetLen must be less than \/31/],
      ['unsupported backend', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } })], /host-gw/],
      ['missing net-conf file', () => ['--net-config-path', '/nonexistent/net-conf.json'], /cannot read --net-config-path \/nonexistent\/net-conf\.json: ENOENT/],
      ['no such interface', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--iface', 'nosuch0'], /Failed to find interface to use that matches the interfaces and\/or regexes provided/],
      ['kube subnet manager', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--kube-subnet-mgr'], /--kube-subnet-mgr is not supported yet/],
      ['ip-masq', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--ip-masq'], /--ip-masq is not supported yet/],
      ['unknown flag', () => ['--no-such-flag'], /flag provided but not defined: -no-such-flag/],
      ['bad renew margin', () => ['--subnet-lease-renew-margin', '0'], /subnet-lease-renew-margin.*1\.\.1439/],
    ];
    let k = 0;
    for (const [what, args, message] of cases) {
      it(what, async () => {
        const lab = Lab.create(`${PREFIX}b${k}`, 1);
        const nodeDir = path.join(dir, `bad${k}`);
        let i = 0;
        const conf = (c: unknown) => netConf(`net-conf-${k}${i++}.json`, c);
        k++;
        try {
          const a = args(conf);
          const at = a.indexOf('--iface');
          const iface = at >= 0 ? a.splice(at, 2)[1] : undefined;
          const d = DaemonProcess.spawn({ node: lab.nodes[0], dir: nodeDir, iface, args: ['--store-path', path.join(nodeDir, 'leases.db'), ...a] });
          const timer = setTimeout(() => d.child.kill('SIGKILL'), 15_000);
          const code = await d.exited;
          clearTimeout(timer);
          assert.equal(code, 1, d.logs());
          const lastLine = d.logs().trim().split('\n').pop()!;
          assert.match(lastLine, /^weft: /);
          assert.match(lastLine, message);
          nothingLeft(lab, nodeDir);
        } finally {
          lab.destroy();
        }
      });
    }
  });

  it('ignores a subnet.env that names a subnet outside the Network, with a warning naming it', async () => {
    const lab = Lab.create(`${PREFIX}o`, 1);
    const nodeDir = path.join(dir, 'outside');
    fs.mkdirSync(nodeDir, { recursive: true });
    fs.writeFileSync(path.join(nodeDir, 'subnet.env'), 'FLANNEL_NETWORK=10.9.0.0/16\nFLANNEL_SUBNET=10.9.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
    const conf = netConf('outside.json', { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    try {
      const d = await DaemonProcess.start({ node: lab.nodes[0], dir: nodeDir, args: ['--net-config-path', conf, '--store-path', path.join(nodeDir, 'l.db')] });
      const s = await d.status();
      assert.match(s.subnet, /^10\.244\.\d+\.0\/24$/);
      assert.match(d.logs(), /ignoring FLANNEL_SUBNET in .*subnet\.env: 10\.9\.3\.0\/24 is outside the Network 10\.244\.0\.0\/16/);
      await d.stop();
    } finally {
      lab.destroy();
    }
  });
});
