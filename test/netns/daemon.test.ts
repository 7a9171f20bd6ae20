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

import { DaemonProcess } from '../../lab/daemon-process';
import { formatCidr4, formatIp4 } from '../../src/cidr';
import { CLI } from '../../lab/engine-process';
import { deleteNamespaces, type Netns, run, runPrefix } from '../../lab/netns';
import { ping } from '../../lab/overlay';
import { Lab, type LabNode } from '../../lab/topology';
import { silentLogger } from '../../src/log';
import { SqliteStore } from '../../src/store/sqlite';

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

async function nothingLeft(lab: Lab, nodeDir: string, storePath: string): Promise<void> {
  const n = lab.nodes[0];
  assert.doesNotMatch(n.ns.ip('link', 'show'), /flannel/, 'no TUN left');
  assert.doesNotMatch(n.ns.ip('route', 'show'), /10\.244\./, 'no route left');
  assert.ok(!fs.existsSync(path.join(nodeDir, 'subnet.env')), 'no subnet.env written');
  // No lease: the store was never made, or it holds none (a directory in its
  // place is a case of its own: nothing can be stored there).
  if (fs.existsSync(storePath) && fs.statSync(storePath).isFile()) {
    const store = new SqliteStore({ path: storePath, log: silentLogger() });
    try {
      const { leases } = await store.listLeases();
      assert.deepEqual(leases.map((l) => `${formatCidr4(l.subnet)} ${formatIp4(l.publicIp)}`), [], 'no lease taken');
    } finally {
      await store.close();
    }
  }
}

/** Holds a port on a node, as another program would: resolves once bound, to its release. */
async function holdPort(ns: Netns, proto: 'udp' | 'tcp', ip: string, port: number): Promise<() => void> {
  const script =
    proto === 'udp'
      ? `require('dgram').createSocket('udp4').bind(${port}, '${ip}', () => console.log('bound'))`
      : `require('net').createServer().listen(${port}, '${ip}', () => console.log('bound'))`;
  const holder = ns.spawn(process.execPath, ['-e', script]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`holding ${proto} ${ip}:${port}: not bound in 10 s`)), 10_000);
    holder.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('bound')) {
        clearTimeout(timer);
        resolve();
      }
    });
    holder.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`holding ${proto} ${ip}:${port}: exited ${code}`));
    });
  });
  return () => holder.kill('SIGKILL');
}

describe('weft daemon on the embedded store', () => {
  it('takes a lease, writes subnet.env in flannel format, and keeps subnet and VtepMAC across a restart', async () => {
    const lab = Lab.create(`${PREFIX}r`, 2);
    const store = path.join(dir, 'restart.db');
    const conf = netConf('restart.json', { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    const args = ['--net-config-path', conf, '--store-path', store];
    const running: DaemonProcess[] = [];
    try {
      const [n1, n2] = lab.nodes;
      const d1 = await DaemonProcess.start({ node: n1, dir: path.join(dir, 'r1'), args: [...args, '--healthz-ip', '127.0.0.1', '--healthz-port', '10267'] });
      running.push(d1);
      const d2 = await DaemonProcess.start({ node: n2, dir: path.join(dir, 'r2'), args });
      running.push(d2);
      // node1 learns node2 from its watch (the store is polled), not at once.
      await DaemonProcess.converged([d1, d2]);
      const s1 = await d1.status();
      const text = fs.readFileSync(d1.subnetFile, 'utf8');
      const sub = s1.subnet.split('/')[0].split('.').map(Number);
      assert.equal(
        text,
        `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${sub[0]}.${sub[1]}.${sub[2]}.${sub[3] + 1}/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`,
      );
      assert.match(s1.vtepMac!, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'locally administered unicast');
      assert.deepEqual((await d2.status()).peers, [{ subnet: s1.subnet, publicIp: n1.underlayIp, vtepMac: s1.vtepMac, via: 'engine' }]);

      for (const d of [d1, d2]) {
        const env = d.subnetEnv();
        lab.wirePod(d.opts.node, `${env.subnet!.ip >>> 24}.${(env.subnet!.ip >>> 16) & 255}.${(env.subnet!.ip >>> 8) & 255}.0/24`, env.mtu!);
      }
      assert.equal(ping(n1.pod, n2.podIp, 3).received, 3);

      // flanneld's health endpoints, and `weft status` from the command line.
      const get = (url: string) =>
        n1.ns.exec(process.execPath, ['-e', `require('http').get('${url}', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(r.statusCode, b.trim())); })`]).trim();
      assert.equal(get('http://127.0.0.1:10267/healthz'), '200 flanneld is running');
      assert.equal(get('http://127.0.0.1:10267/readyz'), '200 flanneld is ready');
      const status = run(process.execPath, [CLI, 'status', '--subnet-file', d1.subnetFile]);
      assert.match(status, new RegExp(`lease\\s+${s1.subnet.replace(/\./g, '\\.')}\\s+public IP ${n1.underlayIp.replace(/\./g, '\\.')}\\s+VtepMAC ${s1.vtepMac}`));
      assert.match(status, new RegExp(`peers \\(1\\)\\n\\s+${(await d2.status()).subnet.replace(/\./g, '\\.')}\\s+${n2.underlayIp.replace(/\./g, '\\.')}`));
      assert.match(status, /tx_packets\s+[1-9]\d*/);

      assert.equal(await d1.stop(), 0, 'SIGTERM exits 0');
      assert.doesNotMatch(n1.ns.ip('link', 'show'), /flannel\.1/, 'TUN removed on stop');
      const again = await DaemonProcess.start({ node: n1, dir: path.join(dir, 'r1'), args });
      running.push(again);
      const s1b = await again.status();
      assert.equal(s1b.subnet, s1.subnet, 'same subnet after restart');
      assert.equal(s1b.vtepMac, s1.vtepMac, 'same VtepMAC after restart');
      assert.equal(ping(n2.pod, n1.podIp, 3).received, 3);
    } finally {
      // Stopped whatever happened: a daemon left running would hold the test file open.
      await Promise.all(running.map((d) => d.stop()));
      lab.destroy();
    }
  });

  describe('bad input stops the daemon naming the problem and leaves the node untouched', () => {
    // An --iface in a case replaces the lab's eth0 (the flag is a list).
    // `env` is the daemon's environment on top of ours; `setup` prepares the
    // node (and returns what undoes it) before the daemon starts. A flag the
    // parser rejects exits 0 after the usage, as flanneld does (`exitCode`);
    // everything else exits 1 with its message last. `logged`: a line the
    // daemon logs on the way (a skipped interface, an ignored env value).
    type Extra = {
      env?: NodeJS.ProcessEnv;
      setup?: (node: LabNode, nodeDir: string) => Promise<(() => void) | void> | void;
      exitCode?: number;
      logged?: RegExp;
    };
    const NET = { Network: '10.244.0.0/16' };
    const VX = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };
    const cases: Array<[string, (conf: (c: unknown) => string, nodeDir: string) => string[], RegExp, Extra?]> = [
      ['unparsable net-conf', (c) => ['--net-config-path', c('{"Network": "10.244.0.0/16",')], /net-conf-\d+\.json: .*JSON/i],
      ['net-conf without Network', (c) => ['--net-config-path', c({ Backend: { Type: 'vxlan' } })], /please define a correct Network parameter in the flannel config/],
      ['SubnetLen 31', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16', SubnetLen: 31 })], /SubnetLen must be less than \/31/],
      ['unsupported backend', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16', Backend: { Type: 'ipip' } })], /backend type "ipip" is not supported by weft/],
      ['missing net-conf file', () => ['--net-config-path', '/nonexistent/net-conf.json'], /cannot read --net-config-path \/nonexistent\/net-conf\.json: ENOENT/],
      ['no such interface', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--iface', 'nosuch0'], /Failed to find interface to use that matches the interfaces and\/or regexes provided/],
      // outside a pod with no kubeconfig: client-go's in-cluster error (the rest of kube mode: kube.test.ts)
      ['kube subnet manager, no API given', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--kube-subnet-mgr'], /fail to create kubernetes config: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined/],
      ['iptables-resync 0', (c) => ['--net-config-path', c({ Network: '10.244.0.0/16' }), '--ip-masq', '--iptables-resync', '0'], /invalid --iptables-resync 0: must be at least 1 second/],
      ['unknown flag', () => ['--no-such-flag'], /flag provided but not defined: -no-such-flag$/, { exitCode: 0 }],
      ['bad renew margin', () => ['--subnet-lease-renew-margin', '0'], /Invalid subnet-lease-renew-margin option, out of acceptable range$/],
      // net-conf fields, with flannel's words where flannel has them
      ['SubnetMin outside the Network', (c) => ['--net-config-path', c({ ...NET, SubnetMin: '10.245.1.0' })], /network config .*: SubnetMin is not in the range of the Network$/],
      ['SubnetMax not on a SubnetLen boundary', (c) => ['--net-config-path', c({ ...NET, SubnetMax: '10.244.12.5' })], /SubnetMax is not on a SubnetLen boundary: 10\.244\.12\.5$/],
      ['Network not a CIDR', (c) => ['--net-config-path', c({ Network: '10.244.0.0/33' })], /invalid CIDR address: 10\.244\.0\.0\/33$/],
      ['IPv6 Network', (c) => ['--net-config-path', c({ Network: 'fd00:10:244::/56' })], /invalid IPv4 CIDR format$/],
      ['EnableIPv6', (c) => ['--net-config-path', c({ ...NET, EnableIPv6: true, IPv6Network: 'fd00::/56' })], /IPv6 is not supported by weft yet/],
      ['Backend not an object', (c) => ['--net-config-path', c({ ...NET, Backend: 'vxlan' })], /error decoding Backend property of config: json: cannot unmarshal string/],
      ['VNI out of range', (c) => ['--net-config-path', c({ ...NET, Backend: { Type: 'vxlan', VNI: 16777216 } })], /VNI must be between 1 and 16777215, got 16777216$/],
      ['GBP true', (c) => ['--net-config-path', c({ ...NET, Backend: { Type: 'vxlan', GBP: true } })], /GBP \(group based policy\) is not supported by weft/],
      ['unknown backend type', (c) => ['--net-config-path', c({ ...NET, Backend: { Type: 'bogus' } })], /unknown backend type: bogus$/],
      ['SubnetLen too small for the Network', (c) => ['--net-config-path', c({ ...NET, SubnetLen: 17 })], /network must be able to accommodate at least four subnets$/],
      ['Network too small', (c) => ['--net-config-path', c({ Network: '10.244.0.0/30' })], /network is too small\. Minimum useful network prefix is \/28$/],
      ['SubnetLen a string', (c) => ['--net-config-path', c({ ...NET, SubnetLen: '24' })], /cannot unmarshal string into Go struct field Config\.SubnetLen of type uint$/],
      ['vxlan Port out of range', (c) => ['--net-config-path', c({ ...NET, Backend: { Type: 'vxlan', Port: 70000 } })], /Port must be between 0 and 65535, got 70000$/],
      // flags
      ['bad --healthz-port', (c) => ['--net-config-path', c(VX), '--healthz-port', '99999'], /invalid --healthz-port 99999: must be 0\.\.65535$/],
      [
        '--iface-regex not a regex',
        (c) => ['--net-config-path', c(VX), '--iface', 'nosuch0', '--iface-regex', '(['],
        /Failed to find interface to use that matches the interfaces and\/or regexes provided$/,
        { logged: /Could not find valid interface matching \(\[: could not compile the IP address regex '\(\['/ },
      ],
      [
        '--public-ip not an IP',
        (c) => ['--net-config-path', c(VX), '--public-ip', 'not-an-ip'],
        /Failed to find interface to use that matches the interfaces and\/or regexes provided$/,
        { logged: /Could not find valid interface matching eth0: invalid public IP address: not-an-ip/ },
      ],
      ['--iface an address not on the node', (c) => ['--net-config-path', c(VX), '--iface', '10.9.9.9'], /Failed to find interface to use that matches the interfaces and\/or regexes provided$/],
      ['--lease-ttl too short', (c) => ['--net-config-path', c(VX), '--lease-ttl', '5'], /invalid --lease-ttl 5: must be 10\.\.604800 seconds$/],
      ['flag without its value', () => ['--net-config-path'], /flag needs an argument: -net-config-path$/, { exitCode: 0 }],
      ['--etcd-endpoints empty', () => ['--etcd-endpoints', ','], /--etcd-endpoints/],
      ['--etcd-endpoints not a URL', () => ['--etcd-endpoints', 'garbage'], /--etcd-endpoints.*garbage/],
      // environment
      ['FLANNELD_SUBNET_LEASE_RENEW_MARGIN=0', (c) => ['--net-config-path', c(VX)], /Invalid subnet-lease-renew-margin option, out of acceptable range$/, { env: { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '0' } }],
      ['FLANNELD_IPTABLES_RESYNC=0', (c) => ['--net-config-path', c(VX)], /invalid --iptables-resync 0: must be at least 1 second/, { env: { FLANNELD_IPTABLES_RESYNC: '0' } }],
      [
        // flanneld logs a bad value and carries on: here as far as the interface.
        'FLANNELD_IP_MASQ=yes',
        (c) => ['--net-config-path', c(VX), '--iface', 'nosuch0'],
        /Failed to find interface to use that matches the interfaces and\/or regexes provided$/,
        { env: { FLANNELD_IP_MASQ: 'yes' }, logged: /Failed to set flag FLANNELD from env: invalid value \\"yes\\" for FLANNELD_IP_MASQ: parse error/ },
      ],
      // files the daemon cannot use
      ['net-conf path is a directory', (_c, nodeDir) => ['--net-config-path', nodeDir], /cannot read --net-config-path .*: EISDIR$/, { setup: (_n, nodeDir) => void fs.mkdirSync(nodeDir, { recursive: true }) }],
      ['store path is a directory', (c, nodeDir) => ['--net-config-path', c(VX), '--store-path', path.join(nodeDir, 'db')], /cannot open the lease store .*db/, { setup: (_n, nodeDir) => void fs.mkdirSync(path.join(nodeDir, 'db'), { recursive: true }) }],
      ['subnet file under a regular file', (c, nodeDir) => ['--net-config-path', c(VX), '--subnet-file', path.join(nodeDir, 'file', 'subnet.env')], /file\/subnet\.env/, { setup: (_n, nodeDir) => fs.writeFileSync(path.join(nodeDir, 'file'), '') }],
      // the node's own resources taken
      ['Backend.Port in use on the node', (c) => ['--net-config-path', c({ ...NET, Backend: { Type: 'vxlan', Port: 4789 } })], /UDP port 4789 on 192\.168\.77\.1 is already in use \(EADDRINUSE\)$/, { setup: (n) => holdPort(n.ns, 'udp', n.underlayIp, 4789) }],
      ['healthz port in use', (c) => ['--net-config-path', c(VX), '--healthz-ip', '127.0.0.1', '--healthz-port', '10268'], /cannot serve healthz on 127\.0\.0\.1:10268: .*EADDRINUSE/, { setup: (n) => holdPort(n.ns, 'tcp', '127.0.0.1', 10268) }],
      ['underlay MTU too small for the overlay', (c) => ['--net-config-path', c(VX)], /MTU of "eth0" \(600\) leaves 550 for the overlay; need >= 576$/, { setup: (n) => void n.ns.ip('link', 'set', 'eth0', 'mtu', '600') }],
    ];
    let k = 0;
    for (const [what, args, message, extra] of cases) {
      it(what, async () => {
        const lab = Lab.create(`${PREFIX}b${k}`, 1);
        const nodeDir = path.join(dir, `bad${k}`);
        const storePath = path.join(nodeDir, 'leases.db');
        let i = 0;
        const conf = (c: unknown) => netConf(`net-conf-${k}${i++}.json`, c);
        k++;
        let undo: (() => void) | void = undefined;
        try {
          fs.mkdirSync(nodeDir, { recursive: true });
          undo = await extra?.setup?.(lab.nodes[0], nodeDir);
          const a = args(conf, nodeDir);
          const at = a.indexOf('--iface');
          const iface = at >= 0 ? a.splice(at, 2)[1] : undefined;
          const d = DaemonProcess.spawn({ node: lab.nodes[0], dir: nodeDir, iface, env: extra?.env, args: ['--store-path', storePath, ...a] });
          const timer = setTimeout(() => d.child.kill('SIGKILL'), 15_000);
          const code = await d.exited;
          clearTimeout(timer);
          assert.equal(code, extra?.exitCode ?? 1, d.logs());
          await nothingLeft(lab, nodeDir, storePath);
          const lines = d.logs().trim().split('\n');
          const said = lines.filter((l) => l.startsWith('weft: '));
          assert.equal(said.length, 1, d.logs());
          assert.match(said[0], message);
          // A start-up error is the last word; a flag error is followed by the usage.
          if (code === 1) assert.equal(lines.at(-1), said[0], d.logs());
          else assert.equal(lines[lines.indexOf(said[0]) + 1], 'Usage: weft [OPTION]...', d.logs());
          if (extra?.logged) assert.match(d.logs(), extra.logged);
        } finally {
          undo?.();
          lab.destroy();
        }
      });
    }
  });

  it('waits for an unreachable etcd with warnings naming it, touching nothing, and stops cleanly', async () => {
    const lab = Lab.create(`${PREFIX}x`, 1);
    const nodeDir = path.join(dir, 'unreachable');
    try {
      // Nothing listens on port 1 of the node's own loopback.
      const d = DaemonProcess.spawn({ node: lab.nodes[0], dir: nodeDir, args: ['--etcd-endpoints', 'http://127.0.0.1:1'] });
      const deadline = Date.now() + 15_000;
      while (!/127\.0\.0\.1:1.*retrying|retrying.*127\.0\.0\.1:1/.test(d.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert.match(d.logs(), /cannot read the network config, retrying in \d+ ms: .*127\.0\.0\.1:1/);
      assert.equal(d.child.exitCode, null, 'still waiting, not exited');
      await nothingLeft(lab, nodeDir, path.join(nodeDir, 'none.db'));
      assert.equal(await d.stop(), 0, 'SIGTERM while waiting exits 0');
      await nothingLeft(lab, nodeDir, path.join(nodeDir, 'none.db'));
    } finally {
      lab.destroy();
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
