// weft as kube-flannel's DaemonSet runs it (--ip-masq --kube-subnet-mgr
// --healthz-port=8081, deploy/kube-weft.yml's net-conf.json and ClusterRole)
// against the lab API server, with pods wired by the real CNI plugins from
// each node's subnet.env. One lab for the whole file, the cases in order:
// the cluster up (every pod pair, flannel's annotations and condition as
// kubectl shows them), the in-cluster config, a kernel flannel.1 node
// annotated with kubectl, a restart keeping its VtepMAC, bad input, the watch's faults (dropped, 410,
// restarted, and a daemon started while the API is down), and last the
// API calls weft made against the manifest's ClusterRole.
//
//   host "api": lab API server 192.168.77.100:6443 (TLS, tokens, RBAC); kubectl runs here
//        |
//   ===br0===
//   node1 .1  weft, kubeconfig + NODE_NAME        pod1 10.244.1.x
//   node2 .2  weft, kubeconfig + NODE_NAME        pod2 10.244.2.x
//   node3 .3  weft, in-cluster (service account bind-mounted, POD_NAME/POD_NAMESPACE)
//   node4 .4  kernel flannel.1 as flanneld sets it up, annotated with kubectl
//   node5 .5  no podCIDR at first; later started while the API server is down, with the
//             node-public-ip and public-ip-overwrite annotations and --set-node-network-unavailable=false
//   node6 .6  a podCIDR outside the Network; then a bad --kube-annotation-prefix
//   node7 .7  a role without "patch nodes/status" (403)
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseCidr4 } from '../../src/cidr';
import { SERVICE_ACCOUNT_DIR } from '../../src/defaults';
import { writeSubnetEnv } from '../../src/subnet/env';
import { randomVtepMac } from '../../src/vtep';
import type { DaemonProcess } from '../../lab/daemon-process';
import { addKernelVxlanPeer, setupKernelVxlan } from '../../lab/kernel-vxlan';
import { KubeLab, WEFT_USER } from '../../lab/kube/cluster';
import { manifestRules } from '../../lab/kube/manifest';
import type { JsonObject } from '../../lab/kube/patch';
import { grants } from '../../lab/kube/rbac';
import { deleteNamespaces, type Netns, runPrefix } from '../../lab/netns';
import { ping, tcpTransfer } from '../../lab/overlay';
import type { LabNode } from '../../lab/topology';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wkb');
const P = 'flannel.alpha.coreos.com/';
const NORBAC_TOKEN = 'weft-without-status-patch';
const NORBAC_USER = 'system:serviceaccount:kube-flannel:no-status';

const annotations = (n: JsonObject) => ((n.metadata as JsonObject).annotations ?? {}) as Record<string, string>;
const nameOf = (n: JsonObject) => (n.metadata as JsonObject).name as string;
const conditions = (n: JsonObject) => ((n.status as JsonObject).conditions ?? []) as JsonObject[];
const flannelKeys = (n: JsonObject) => Object.keys(annotations(n)).filter((k) => k.startsWith(P));

/** The daemon's log messages (pino JSON lines), and anything else it wrote (its last words on stderr). */
function messages(d: DaemonProcess): string[] {
  return d
    .logs()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return String((JSON.parse(l) as { msg?: unknown }).msg);
      } catch {
        return l;
      }
    });
}

const logged = (d: DaemonProcess, re: RegExp) => messages(d).some((m) => re.test(m));

async function peerSubnets(d: DaemonProcess): Promise<string[]> {
  return (await d.status()).peers.map((p) => p.subnet).sort();
}

function waitPeers(d: DaemonProcess, what: string, ms: number, pred: (subnets: string[]) => boolean): Promise<string[]> {
  return until(`${d.opts.node.ns.name}: ${what}`, ms, async () => {
    const s = await peerSubnets(d);
    return pred(s) ? s : undefined;
  });
}

const hasFlannelLink = (ns: Netns) => /flannel/.test(ns.ip('-o', 'link', 'show'));

/** The exit code, within ms. */
async function exitWithin(d: DaemonProcess, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([d.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]);
  clearTimeout(timer);
  if (code === 'timeout') {
    await d.stop();
    assert.fail(`${d.opts.node.ns.name}: the daemon did not exit within ${ms} ms:\n${d.logs()}`);
  }
  return code;
}

describe('weft with --kube-subnet-mgr against the lab API server', () => {
  let kl: KubeLab;
  let nodes: LabNode[];
  const weft: DaemonProcess[] = [];
  const others: DaemonProcess[] = [];

  before(async () => {
    kl = await KubeLab.create(PREFIX, 7, { bookmarkMs: 1000 });
    nodes = kl.lab.nodes;
    for (const n of nodes.slice(0, 4)) await kl.register(n);
    weft.push(await kl.daemon(nodes[0]), await kl.daemon(nodes[1]), await kl.daemon(nodes[2], { inCluster: true }));
    for (const d of weft) await d.waitReady(30_000);
    for (const d of weft) kl.lab.wirePodCni(d.opts.node, d.subnetFile);
  });

  after(async () => {
    await Promise.all([...weft, ...others].map((d) => d.stop()));
    await kl?.destroy();
    deleteNamespaces(PREFIX);
  });

  it("three nodes: every pod pair pings and carries TCP byte-exact; kubectl shows flannel's annotations and NetworkUnavailable=False", async () => {
    for (const d of weft) await waitPeers(d, 'two peers', 5000, (s) => s.length === 2);
    const pods = nodes.slice(0, 3);
    for (const a of pods) {
      for (const b of pods) {
        if (a === b) continue;
        assert.equal(ping(a.pod, b.podIp, 2).received, 2, `pod${a.index} -> pod${b.index}`);
        const t = await tcpTransfer(a.pod, b.pod, b.podIp, 1 << 20);
        assert.equal(t.receivedBytes, 1 << 20, `TCP pod${a.index} -> pod${b.index}`);
        assert.equal(t.receivedSha256, t.sentSha256, `TCP pod${a.index} -> pod${b.index} byte-exact`);
      }
    }
    const byName = new Map((await kl.nodes()).map((n) => [nameOf(n), n]));
    for (const d of weft) {
      const node = d.opts.node;
      const st = await d.status();
      const n = byName.get(kl.nodeName(node))!;
      assert.equal(st.subnet, kl.podCidr(node), 'the lease is the podCIDR');
      assert.deepEqual(Object.fromEntries(flannelKeys(n).map((k) => [k, annotations(n)[k]])), {
        [`${P}backend-data`]: `{"VNI":1,"VtepMAC":"${st.vtepMac}"}`,
        [`${P}backend-type`]: 'vxlan',
        [`${P}kube-subnet-manager`]: 'true',
        [`${P}public-ip`]: node.underlayIp,
      });
      const nu = conditions(n).find((c) => c.type === 'NetworkUnavailable');
      assert.deepEqual([nu?.status, nu?.reason, nu?.message], ['False', 'FlannelIsUp', 'Flannel is running on this node']);
      assert.deepEqual(conditions(n).map((c) => c.type), ['Ready', 'NetworkUnavailable'], 'merged by type, Ready kept');
      const env = d.subnetEnv();
      assert.equal(env.ipMasq, true, 'FLANNEL_IPMASQ=true (--ip-masq)');
      assert.equal(env.mtu, 1450);
    }
  });

  it("in-cluster: the DaemonSet's pod finds its node through POD_NAME and reads the bind-mounted service account", async () => {
    const d3 = weft[2];
    assert.ok(logged(d3, /using the in-cluster config/), 'no kubeconfig: in-cluster');
    assert.ok(logged(d3, /Kubernetes Subnet Manager - node3$/), 'node name from the pod spec');
    assert.equal((await d3.status()).store, 'Kubernetes API https://192.168.77.100:6443');
    const pods = kl.api.requests().filter((r) => r.verb === 'get' && r.resource === 'pods');
    assert.deepEqual(pods.map((r) => [r.user, r.namespace, r.name, r.code]), [[WEFT_USER, 'kube-flannel', 'kube-flannel-ds-node3', 200]]);
    assert.deepEqual(fs.readdirSync(SERVICE_ACCOUNT_DIR), [], 'the token was mounted for the daemon alone');
  });

  it('mixed: a kernel flannel.1 node annotated with kubectl as flanneld writes it carries traffic both ways with weft nodes', async () => {
    const n4 = nodes[3];
    const mac = randomVtepMac();
    const file = path.join(kl.dir, 'node4', 'subnet.env');
    writeSubnetEnv(file, { network: parseCidr4('10.244.0.0/16'), subnet: parseCidr4(kl.podCidr(n4)), mtu: 1450, ipMasq: true });
    kl.lab.wirePodCni(n4, file);
    setupKernelVxlan(n4, mac);
    const r = await kl.kubectl([
      'annotate',
      'node',
      'node4',
      `${P}backend-data={"VNI":1,"VtepMAC":"${mac}"}`,
      `${P}backend-type=vxlan`,
      `${P}kube-subnet-manager=true`,
      `${P}public-ip=${n4.underlayIp}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    // What flanneld on node4 would do for each weft node, from what kubectl shows of it.
    for (const n of await kl.nodes()) {
      const a = annotations(n);
      if (nameOf(n) === 'node4' || a[`${P}kube-subnet-manager`] !== 'true') continue;
      const data = JSON.parse(a[`${P}backend-data`]) as { VtepMAC: string };
      addKernelVxlanPeer(n4, { subnet: (n.spec as JsonObject).podCIDR as string, publicIp: a[`${P}public-ip`], vtepMac: data.VtepMAC });
    }
    for (const d of weft) {
      await until(`${d.opts.node.ns.name} takes node4 as a peer`, 5000, async () => (await d.status()).peers.find((p) => p.subnet === '10.244.4.0/24' && p.vtepMac === mac));
    }
    const n1 = nodes[0];
    assert.equal(ping(n4.pod, n1.podIp, 2).received, 2, 'kernel pod -> weft pod');
    assert.equal(ping(n1.pod, n4.podIp, 2).received, 2, 'weft pod -> kernel pod');
    for (const [a, b] of [
      [n4, n1],
      [n1, n4],
    ]) {
      const t = await tcpTransfer(a.pod, b.pod, b.podIp, 2 << 20);
      assert.equal(t.receivedSha256, t.sentSha256, `TCP pod${a.index} -> pod${b.index} byte-exact`);
    }
  });

  it('a restarted daemon takes its VtepMAC back from its backend-data and has nothing to patch', async () => {
    const before = await weft[1].status();
    assert.equal(await weft[1].stop(), 0);
    weft[1] = await kl.daemon(nodes[1]);
    const after = await weft[1].waitReady(30_000);
    assert.equal(after.vtepMac, before.vtepMac);
    assert.equal(after.subnet, before.subnet);
    assert.ok(logged(weft[1], new RegExp(`^reusing VtepMAC ${before.vtepMac} from our previous lease$`)), weft[1].logs());
    assert.equal(messages(weft[1]).filter((m) => m.startsWith('annotated node "node2"')).length, 1, 'annotated on the first start only');
    await waitPeers(weft[0], 'node2 still a peer', 5000, (s) => s.includes('10.244.2.0/24'));
    assert.equal(ping(nodes[0].pod, nodes[1].podIp, 2).received, 2, 'pod1 -> pod2 after the restart');
  });

  it('bad input: each a clear error or warning naming the thing; the node left untouched, or still forwarding', async () => {
    const [n5, n6, n7] = nodes.slice(4);
    await kl.register(n5, { podCIDR: undefined });
    await kl.register(n6, { podCIDR: '10.9.6.0/24' });
    await kl.register(n7);
    await kl.api.addUser(NORBAC_TOKEN, { user: NORBAC_USER, rules: manifestRules().filter((r) => !r.resources.includes('nodes/status')) });
    // The two that wait out flannel's 30 s run side by side with the rest.
    const noCidr = await kl.daemon(n5);
    const forbidden = await kl.daemon(n7, { token: { token: NORBAC_TOKEN, user: NORBAC_USER } });
    others.push(noCidr, forbidden);

    const untouched = async (node: LabNode, d: DaemonProcess) => {
      assert.deepEqual(flannelKeys((await kl.api.node(kl.nodeName(node)))!), [], `${kl.nodeName(node)} carries no flannel annotation`);
      assert.ok(!hasFlannelLink(node.ns), `no flannel device left on ${kl.nodeName(node)}`);
      assert.ok(!fs.existsSync(d.subnetFile), 'no subnet.env');
    };

    const outside = await kl.daemon(n6);
    assert.equal(await exitWithin(outside, 20_000), 1);
    assert.ok(logged(outside, /^weft: subnet "10\.244\.0\.0\/16" specified in the flannel net config doesn't contain "10\.9\.6\.0\/24" PodCIDR of the "node6" node$/), outside.logs());
    await untouched(n6, outside);

    const badPrefix = await kl.daemon(n6, { extraArgs: ['--kube-annotation-prefix', 'Bad_Prefix'] });
    assert.equal(await exitWithin(badPrefix, 20_000), 1);
    assert.ok(logged(badPrefix, /^weft: --kube-annotation-prefix "Bad_Prefix": subnet\/kube: prefix must be in a format: fqdn\/\[0-9a-z-_\]\*$/), badPrefix.logs());
    await untouched(n6, badPrefix);

    // A peer whose annotations do not parse is skipped with a warning naming it; forwarding goes on.
    const before = await peerSubnets(weft[0]);
    await kl.api.addNode({
      name: 'bogus',
      podCIDR: '10.244.60.0/24',
      internalIP: '192.168.77.60',
      annotations: { [`${P}kube-subnet-manager`]: 'true', [`${P}backend-type`]: 'vxlan', [`${P}backend-data`]: '{"VNI":1}', [`${P}public-ip`]: 'not-an-ip' },
    });
    for (const d of weft) {
      await until(`${d.opts.node.ns.name} warns about bogus`, 5000, async () => logged(d, /^skipping node "bogus" as a peer: annotation flannel\.alpha\.coreos\.com\/public-ip "not-an-ip" is not an IPv4 address$/));
    }
    let r = await kl.kubectl(['annotate', '--overwrite', 'node', 'bogus', `${P}public-ip=192.168.77.60`]);
    assert.equal(r.code, 0, r.stderr);
    await until('the next fault is named', 5000, async () => logged(weft[0], /^skipping node "bogus" as a peer: .*backend-data: vxlan lease BackendData\.VtepMAC is not a MAC address$/));
    assert.deepEqual(await peerSubnets(weft[0]), before, 'peers unchanged');
    assert.equal(ping(nodes[0].pod, nodes[1].podIp, 2).received, 2, 'still forwarding');
    r = await kl.kubectl(['annotate', '--overwrite', 'node', 'bogus', `${P}backend-data={"VNI":1,"VtepMAC":"0e:00:00:00:00:60"}`]);
    assert.equal(r.code, 0, r.stderr);
    await waitPeers(weft[0], 'bogus mended is a peer', 5000, (s) => s.includes('10.244.60.0/24'));
    await kl.api.deleteNode('bogus');
    await waitPeers(weft[0], 'bogus deleted is gone', 5000, (s) => !s.includes('10.244.60.0/24'));

    assert.equal(await exitWithin(noCidr, 45_000), 1);
    assert.ok(logged(noCidr, /^node "node5" has no podCIDR yet; waiting up to 30 s/), noCidr.logs());
    assert.ok(logged(noCidr, /^weft: node "node5" pod cidr not assigned$/), noCidr.logs());
    await untouched(n5, noCidr);

    assert.equal(await exitWithin(forbidden, 45_000), 1);
    const denial =
      'patch nodes/status "node7": 403 nodes "node7" is forbidden: User "system:serviceaccount:kube-flannel:no-status" cannot patch resource "nodes/status" in API group "" at the cluster scope ' +
      '(RBAC: the ClusterRole bound to this service account must allow verb "patch" on resource "nodes/status"; deploy/kube-weft.yml\'s does)';
    assert.ok(messages(forbidden).includes(`Failed to patch node "node7": ${denial}; retrying every 3 s`), forbidden.logs());
    assert.ok(messages(forbidden).includes(`weft: timeout contacting kube-api, failed to patch node "node7". Error: ${denial}`), forbidden.logs());
    await untouched(n7, forbidden);
  });

  it("the watch's faults: dropped, 410 Gone, the API server down and restarted; peers end as annotated, a deleted node's peer goes within 5 s, pod1 -> pod2 loses nothing", async () => {
    const [n1, n2, n3, , n5] = nodes;
    const [d1, d2] = weft;
    // A steady ping across everything below, 25 s at most.
    const prober = n1.pod.spawn('ping', ['-n', '-i', '0.1', '-c', '250', '-W', '1', n2.podIp]);
    let out = '';
    prober.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const probeDone = new Promise((r) => prober.once('exit', r));
    const ghost = { name: 'ghost', podCIDR: '10.244.50.0/24', internalIP: '192.168.77.50' };
    const ghostAnnotations = { [`${P}kube-subnet-manager`]: 'true', [`${P}backend-type`]: 'vxlan', [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:00:00:00:00:50"}', [`${P}public-ip`]: '192.168.77.50' };

    // 1. Watches cut: each resumes from its resourceVersion and sees what came meanwhile.
    assert.equal(await kl.api.dropWatches('cut'), 3);
    await kl.api.addNode({ ...ghost, annotations: ghostAnnotations });
    for (const d of weft) await waitPeers(d, 'ghost added after the cut', 5000, (s) => s.includes('10.244.50.0/24'));

    // 2. 410 Gone on the next watch of each: a re-list, whose snapshot drops what was deleted meanwhile.
    await kl.api.failNext({ match: { verb: 'watch', resource: 'nodes' }, count: 3, code: 410 });
    assert.equal(await kl.api.dropWatches('end'), 3);
    await kl.api.deleteNode('ghost');
    for (const d of weft) {
      await waitPeers(d, 'ghost gone', 5000, (s) => !s.includes('10.244.50.0/24'));
      await until(`${d.opts.node.ns.name} re-listed after 410`, 5000, async () => logged(d, /^watch of nodes: .*; listing nodes again$/));
    }

    // 3. The API server down: the nodes forward on; a daemon started now waits, says why, touches nothing.
    // node5 by now has its podCIDR, and the operator's two public-IP annotations.
    await kl.register(n5, { annotations: { [`${P}node-public-ip`]: n5.underlayIp, [`${P}public-ip-overwrite`]: '192.168.77.55' } });
    await kl.api.stop();
    const late = await kl.daemon(n5, { extraArgs: ['--set-node-network-unavailable=false'] });
    others.push(late);
    await until('the late daemon says what fails', 10_000, async () => logged(late, /^get nodes "node5": request to https:\/\/192\.168\.77\.100:6443\/api\/v1\/nodes\/node5 failed, reason: connect ECONNREFUSED 192\.168\.77\.100:6443; retrying$/));
    await until('the others say the watch is lost', 10_000, async () => logged(d1, /^watch of nodes at https:\/\/192\.168\.77\.100:6443 lost; retrying with backoff: watch nodes: /));
    assert.ok(!fs.existsSync(late.subnetFile), 'no subnet.env while the API is down');
    assert.ok(!hasFlannelLink(n5.ns), 'no device while the API is down');
    assert.equal(late.child.exitCode, null, 'still waiting, not failed');
    assert.deepEqual(await peerSubnets(d1), ['10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24'], 'an outage changes no peer');

    // 4. Back (history lost: every watch gets 410 and re-lists); the late daemon comes up and is seen.
    await kl.api.restart();
    await late.waitReady(30_000);
    for (const d of [d1, d2]) await waitPeers(d, 'node5 joins', 10_000, (s) => s.includes('10.244.5.0/24'));
    // node-public-ip stood in for --public-ip; public-ip-overwrite is what the others were told; no condition was set.
    assert.ok(logged(late, /^using public IP 192\.168\.77\.5 from node annotation flannel\.alpha\.coreos\.com\/node-public-ip$/), late.logs());
    assert.ok(logged(late, /^Overriding public ip with '192\.168\.77\.55' from node annotation 'flannel\.alpha\.coreos\.com\/public-ip-overwrite'$/), late.logs());
    assert.equal((await d1.status()).peers.find((p) => p.subnet === '10.244.5.0/24')?.publicIp, '192.168.77.55');
    const n5node = (await kl.api.node('node5'))!;
    assert.equal(annotations(n5node)[`${P}public-ip`], '192.168.77.55');
    assert.deepEqual(
      conditions(n5node).filter((c) => c.type === 'NetworkUnavailable').map((c) => [c.status, c.reason]),
      [['True', 'NoRouteCreated']],
      '--set-node-network-unavailable=false leaves the condition alone',
    );

    // 5. A node deleted: its peer is gone from the others within 5 s; its own daemon stops as flanneld does.
    const t0 = Date.now();
    await kl.api.deleteNode(kl.nodeName(n3));
    for (const d of [d1, d2, late]) await waitPeers(d, 'node3 gone', 5000, (s) => !s.includes('10.244.3.0/24'));
    assert.ok(Date.now() - t0 <= 5000, `gone in ${Date.now() - t0} ms`);
    assert.equal(await exitWithin(weft[2], 10_000), 0);
    assert.ok(logged(weft[2], /^Lease has been revoked\. Shutting down daemon\.$/));

    // Peers equal the annotated nodes, for every survivor.
    const annotated = (await kl.nodes()).filter((n) => annotations(n)[`${P}kube-subnet-manager`] === 'true');
    for (const d of [d1, d2, late]) {
      const own = kl.nodeName(d.opts.node);
      const want = annotated.filter((n) => nameOf(n) !== own).map((n) => (n.spec as JsonObject).podCIDR as string).sort();
      assert.deepEqual(await peerSubnets(d), want, `${own}'s peers`);
    }
    assert.deepEqual(annotated.map(nameOf).sort(), ['node1', 'node2', 'node4', 'node5']);

    await probeDone;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m, out);
    assert.equal(Number(m[2]), Number(m[1]), `pod1 -> pod2 lost ${Number(m[1]) - Number(m[2])} of ${m[1]} pings`);
  });

  it("the calls weft made are exactly deploy/kube-weft.yml's ClusterRole, and none was refused", () => {
    assert.deepEqual(kl.api.access(WEFT_USER), { allowed: grants(manifestRules()), denied: [] });
  });
});
