// deploy/: the manifest parses (with a YAML parser we did not write), every
// argument of weft's container is one weft's flag parser runs with, the
// ClusterRole grants exactly the API calls src/subnet/kube.ts makes, the
// DaemonSet carries kube-flannel's pod settings, probes and mounts (plus
// /dev/net/tun), the image provides what the manifest runs, and the
// install-cni step copies a conflist atomically. The same ClusterRole
// against the calls a running weft really makes: test/netns/kube.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNetConf } from '../../src/config/netconf';
import { parseDaemonFlags } from '../../src/daemon/flags';
import { KUBE_FLANNEL_CONFLIST } from '../../lab/cni';
import { daemonSetPod, MANIFEST, manifestConfig, manifestObject, manifestObjects, manifestRules, weftContainer } from '../../lab/kube/manifest';
import { FLANNEL_RULES, grants } from '../../lab/kube/rbac';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const objects = manifestObjects();

/**
 * The calls kube.ts makes, read from its source: each client method or
 * watched path it uses, as "verb resource". A call this table does not know
 * fails the test, so a new call cannot slip past the ClusterRole unseen.
 */
function callsInKubeSource(): string[] {
  const text = fs.readFileSync(path.join(ROOT, 'src', 'subnet', 'kube.ts'), 'utf8');
  const known: Record<string, string> = {
    readNode: 'get nodes',
    listNode: 'list nodes',
    patchNodeStatus: 'patch nodes/status',
    readNamespacedPod: 'get pods',
  };
  const calls = new Set<string>();
  for (const m of text.matchAll(/this\.api\.(\w+)\(/g)) {
    assert.ok(known[m[1]], `kube.ts calls ${m[1]}, which this test does not map to a verb and resource`);
    calls.add(known[m[1]]);
  }
  for (const m of text.matchAll(/new Watch\([^)]*\)\.watch\(\s*'([^']+)'/g)) {
    assert.equal(m[1], '/api/v1/nodes', `kube.ts watches ${m[1]}`);
    calls.add('watch nodes');
  }
  return [...calls].sort();
}

describe('deploy/kube-weft.yml', () => {
  it("holds kube-flannel's objects, in its order and with its names", () => {
    assert.deepEqual(
      objects.map((o) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`),
      ['Namespace kube-flannel', 'ClusterRole flannel', 'ClusterRoleBinding flannel', 'ServiceAccount kube-flannel/flannel', 'ConfigMap kube-flannel/kube-flannel-cfg', 'DaemonSet kube-flannel/kube-flannel-ds'],
    );
    const binding = manifestObject('ClusterRoleBinding', objects) as unknown as { roleRef: { kind: string; name: string }; subjects: unknown[] };
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'flannel' });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
  });

  it("every argument of weft's container is a flag weft runs with, nothing ignored", () => {
    const c = weftContainer(objects);
    const r = parseDaemonFlags(c.args ?? [], {});
    assert.equal(r.kind, 'run', JSON.stringify(r));
    assert.ok(r.kind === 'run');
    assert.deepEqual(r.warnings, []);
    assert.equal(r.flags.kubeSubnetMgr, true);
    assert.equal(r.flags.ipMasq, true);
    assert.equal(r.flags.healthzPort, 8081);
    // Nothing in the environment is read as a flag (FLANNELD_*): the env is kube-flannel's.
    assert.deepEqual(
      (c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]),
      [
        ['POD_NAME', 'metadata.name'],
        ['POD_NAMESPACE', 'metadata.namespace'],
        ['EVENT_QUEUE_DEPTH', '5000'],
        ['CONT_WHEN_CACHE_NOT_READY', 'false'],
      ],
    );
    // The defaults the mounts serve: subnet.env under /run/flannel, net-conf.json under /etc/kube-flannel.
    const mounts = Object.fromEntries((c.volumeMounts as Array<{ name: string; mountPath: string }>).map((m) => [m.name, m.mountPath]));
    assert.equal(path.dirname(r.flags.subnetFile), mounts.run);
    assert.equal(`${path.dirname(r.flags.netConfigPath)}/`, mounts['flannel-cfg']);
  });

  it('the ClusterRole grants exactly the calls kube.ts makes, which are kube-flannel\'s', () => {
    const rules = manifestRules(objects);
    assert.deepEqual(grants(rules), callsInKubeSource());
    assert.deepEqual(grants(rules), ['get nodes', 'get pods', 'list nodes', 'patch nodes/status', 'watch nodes']);
    assert.deepEqual(grants(rules), grants(FLANNEL_RULES), "the lab's flannel identity and the manifest agree");
    assert.ok(rules.every((r) => !r.verbs.includes('*') && !r.resources.some((x) => x.includes('*')) && r.apiGroups.every((g) => g === '')), 'no wildcards, core group only');
  });

  it("the pod runs as kube-flannel's does, with /dev/net/tun and a scrape annotation for /metrics", () => {
    const ds = manifestObject('DaemonSet', objects) as unknown as { spec: { template: { metadata: { annotations: Record<string, string> } } } };
    const pod = daemonSetPod(objects) as Record<string, unknown>;
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(pod.serviceAccountName, 'flannel');
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists', effect: 'NoSchedule' }]);
    const c = weftContainer(objects) as Record<string, any>;
    assert.deepEqual(c.securityContext, { privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } });
    assert.deepEqual(c.ports, [{ name: 'healthz', containerPort: 8081, protocol: 'TCP' }]);
    assert.deepEqual(c.livenessProbe, { httpGet: { path: '/healthz', port: 'healthz' }, initialDelaySeconds: 10, periodSeconds: 30 });
    assert.deepEqual(c.readinessProbe, { httpGet: { path: '/readyz', port: 'healthz' }, initialDelaySeconds: 5, periodSeconds: 10 });
    const volumes = Object.fromEntries((pod.volumes as Array<{ name: string; hostPath?: { path: string; type?: string } }>).map((v) => [v.name, v.hostPath]));
    assert.deepEqual(volumes['dev-net-tun'], { path: '/dev/net/tun', type: 'CharDevice' });
    assert.deepEqual(volumes['xtables-lock'], { path: '/run/xtables.lock', type: 'FileOrCreate' });
    assert.deepEqual(volumes.run, { path: '/run/flannel' });
    assert.ok((c.volumeMounts as Array<{ name: string; mountPath: string }>).some((m) => m.name === 'dev-net-tun' && m.mountPath === '/dev/net/tun'));
    const a = ds.spec.template.metadata.annotations;
    assert.equal(a['prometheus.io/scrape'], 'true');
    assert.equal(a['prometheus.io/path'], '/metrics');
    assert.equal(Number(a['prometheus.io/port']), 8081);
  });

  it("keeps flannel's CNI plugin init container and installs kube-flannel's conflist", () => {
    const [plugin, conf] = daemonSetPod(objects).initContainers;
    assert.equal(plugin.name, 'install-cni-plugin');
    assert.match(plugin.image, /^ghcr\.io\/flannel-io\/flannel-cni-plugin:/);
    assert.deepEqual([...(plugin.command ?? []), ...(plugin.args ?? [])], ['cp', '-f', '/flannel', '/opt/cni/bin/flannel']);
    assert.equal(conf.name, 'install-cni');
    assert.equal(conf.image, weftContainer(objects).image);
    assert.deepEqual([...(conf.command ?? []), ...(conf.args ?? [])], ['/opt/bin/install-conf', '/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']);
    const data = manifestConfig(objects);
    assert.deepEqual(JSON.parse(data['cni-conf.json']), KUBE_FLANNEL_CONFLIST);
    const net = loadNetConf(data['net-conf.json'], { checkSubnets: false });
    assert.equal(net.Backend.Type, 'vxlan');
    assert.equal(net.EnableNFTables, false);
  });

  it('the image provides every program the manifest runs from it', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
    const weftImage = weftContainer(objects).image;
    const pod = daemonSetPod(objects);
    for (const c of [...pod.initContainers, ...pod.containers].filter((x) => x.image === weftImage)) {
      const prog = c.command![0];
      assert.ok(dockerfile.includes(prog), `deploy/Dockerfile makes ${prog} (${c.name} runs it)`);
    }
    assert.match(dockerfile, /ln -s weft \/opt\/bin\/flanneld/, "kube-flannel.yml's /opt/bin/flanneld runs weft too");
  });
});

describe('deploy/install-conf', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-install-conf-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const script = path.join(ROOT, 'deploy', 'install-conf');

  it('copies the conflist into place, replacing the old one, leaving no temp file', () => {
    const src = path.join(tmp, 'cni-conf.json');
    const dest = path.join(tmp, 'net.d', '10-flannel.conflist');
    fs.mkdirSync(path.dirname(dest));
    fs.writeFileSync(src, manifestConfig(objects)['cni-conf.json']);
    fs.writeFileSync(dest, 'old');
    execFileSync(script, [src, dest]);
    assert.equal(fs.readFileSync(dest, 'utf8'), fs.readFileSync(src, 'utf8'));
    assert.equal(fs.statSync(dest).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(path.dirname(dest)), ['10-flannel.conflist']);
  });
  it('fails naming the source, and says how to call it', () => {
    const r = spawnSync(script, [path.join(tmp, 'missing.json'), path.join(tmp, 'x.conflist')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /error installing ".*missing\.json"/);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('.')), []);
    const u = spawnSync(script, [], { encoding: 'utf8' });
    assert.equal(u.status, 1);
    assert.match(u.stderr, /usage: .* <src> <dest>/);
  });
});

it('MANIFEST names the file under deploy/', () => {
  assert.equal(MANIFEST, path.join(ROOT, 'deploy', 'kube-weft.yml'));
});
