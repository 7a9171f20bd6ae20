// The kube subnet manager's decisions, without an API server: flannel's
// annotation prefix rules, a peer's lease from its annotations and podCIDRs,
// the annotations we publish and the patch that publishes them (only what
// differs, public-ip-overwrite honoured), the NetworkUnavailable condition,
// the client configuration from the flags (flannel's error texts), and how
// API failures are told. The same code against a real protocol is
// test/netns/kube.test.ts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { ApiException } from '@kubernetes/client-node';

import { parseCidr4, parseIp4 } from '../../src/cidr';
import { loadNetConf } from '../../src/config/netconf';
import { silentLogger } from '../../src/log';
import { describeApiError, kubeConfigFromFlags } from '../../src/subnet/kube';
import {
  annotatedBackend,
  annotationKeys,
  annotationPatch,
  networkAvailablePatch,
  type NodeLike,
  nodeLease,
  nodeSubnet,
  publishedBackend,
  storedPublicIp,
} from '../../src/subnet/kube-node';

const K = annotationKeys('flannel.alpha.coreos.com');
const P = 'flannel.alpha.coreos.com/';
const MAC = '12:c6:65:89:b4:e3';

function node(name: string, annotations: Record<string, string>, podCIDRs: string[] = ['10.244.3.0/24']): NodeLike {
  return { metadata: { name, annotations }, spec: { podCIDR: podCIDRs[0], podCIDRs } };
}

const flannelVxlan = (ip = '192.168.77.3'): Record<string, string> => ({
  [`${P}kube-subnet-manager`]: 'true',
  [`${P}backend-type`]: 'vxlan',
  [`${P}backend-data`]: `{"VNI":1,"VtepMAC":"${MAC}"}`,
  [`${P}public-ip`]: ip,
});

describe('annotation prefix (flannel newAnnotations)', () => {
  it('appends "/" or "-" as flannel does', () => {
    const cases: Array<[string, string]> = [
      ['flannel.alpha.coreos.com', 'flannel.alpha.coreos.com/backend-type'],
      ['flannel.alpha.coreos.com/', 'flannel.alpha.coreos.com/backend-type'],
      ['flannel.alpha.coreos.com/prefix', 'flannel.alpha.coreos.com/prefix-backend-type'],
      ['flannel.alpha.coreos.com/prefix-', 'flannel.alpha.coreos.com/prefix-backend-type'],
      ['org.com', 'org.com/backend-type'],
      ['org9.com', 'org9.com/backend-type'],
      ['org.com/9', 'org.com/9-backend-type'],
      // Go's MatchString is anchored at the end only: a leading capital passes, as in flannel.
      ['Org.com', 'Org.com/backend-type'],
    ];
    for (const [prefix, want] of cases) assert.equal(annotationKeys(prefix).backendType, want, prefix);
  });
  it("refuses what flannel refuses, with flannel's words", () => {
    assert.throws(() => annotationKeys('a.com/b/c'), { message: 'subnet/kube: prefix can contain at most single slash' });
    for (const bad of ['org', 'org/', 'org/prefix', 'org.COM', 'org.com/PREFIX', '', 'example.com/a b']) {
      assert.throws(() => annotationKeys(bad), { message: 'subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*' }, bad);
    }
  });
  it('names every annotation flannel uses', () => {
    assert.deepEqual(Object.values(annotationKeys('example.com/net')).sort(), [
      'example.com/net-backend-data',
      'example.com/net-backend-type',
      'example.com/net-backend-v6-data',
      'example.com/net-kube-subnet-manager',
      'example.com/net-node-public-ip',
      'example.com/net-node-public-ipv6',
      'example.com/net-public-ip',
      'example.com/net-public-ip-overwrite',
      'example.com/net-public-ipv6',
      'example.com/net-public-ipv6-overwrite',
    ]);
  });
});

describe("a node's subnet (spec.podCIDRs, else spec.podCIDR)", () => {
  it('takes the IPv4 entry of a dual-stack node, either order', () => {
    assert.deepEqual(nodeSubnet(node('a', {}, ['10.244.3.0/24', 'fd00:10:244:3::/64'])), parseCidr4('10.244.3.0/24'));
    assert.deepEqual(nodeSubnet(node('a', {}, ['fd00:10:244:3::/64', '10.244.3.0/24'])), parseCidr4('10.244.3.0/24'));
  });
  it('falls back to spec.podCIDR, and is null when there is none', () => {
    assert.deepEqual(nodeSubnet({ metadata: { name: 'a' }, spec: { podCIDR: '10.244.9.0/24' } }), parseCidr4('10.244.9.0/24'));
    assert.equal(nodeSubnet({ metadata: { name: 'a' }, spec: {} }), null);
    assert.equal(nodeSubnet({ metadata: { name: 'a' } }), null);
  });
  it("refuses flannel's way: three entries, no IPv4, not a CIDR", () => {
    assert.throws(() => nodeSubnet(node('n7', {}, ['10.244.3.0/24', 'fd00::/64', '10.9.0.0/24'])), { message: 'node "n7" pod cidrs should be IPv4/IPv6 only or dualstack' });
    assert.throws(() => nodeSubnet(node('n7', {}, ['fd00::/64'])), /node "n7" has no IPv4 podCIDR/);
    assert.throws(() => nodeSubnet(node('n7', {}, ['10.244.3.0'])), { message: 'invalid CIDR address: 10.244.3.0' });
  });
});

describe("a peer's lease from its node", () => {
  it('reads what flanneld writes, for each backend', () => {
    const v = nodeLease(node('n3', flannelVxlan()), K);
    assert.deepEqual(v, { lease: { subnet: parseCidr4('10.244.3.0/24'), publicIp: parseIp4('192.168.77.3'), backend: { type: 'vxlan', vni: 1, vtepMac: MAC }, expiration: null } });
    const udp = nodeLease(node('n3', { [`${P}kube-subnet-manager`]: 'true', [`${P}backend-type`]: '', [`${P}backend-data`]: 'null', [`${P}public-ip`]: '192.168.77.3' }), K);
    assert.ok(udp && 'lease' in udp);
    assert.deepEqual(udp.lease.backend, { type: 'udp' });
    const hostgw = nodeLease(node('n3', { [`${P}kube-subnet-manager`]: 'true', [`${P}backend-type`]: 'host-gw', [`${P}backend-data`]: 'null', [`${P}public-ip`]: '192.168.77.3' }), K);
    assert.ok(hostgw && 'lease' in hostgw);
    assert.deepEqual(hostgw.lease.backend, { type: 'host-gw' });
    const wg = nodeLease(node('n3', { ...flannelVxlan(), [`${P}backend-type`]: 'wireguard', [`${P}backend-data`]: '{"PublicKey":"x"}' }), K);
    assert.ok(wg && 'lease' in wg);
    assert.deepEqual(wg.lease.backend, { type: 'other', name: 'wireguard' });
  });
  it('a node without kube-subnet-manager "true" is no peer at all', () => {
    assert.equal(nodeLease(node('n3', {}), K), null);
    assert.equal(nodeLease(node('n3', { ...flannelVxlan(), [`${P}kube-subnet-manager`]: 'false' }), K), null);
  });
  it('a malformed node is refused, naming the annotation at fault', () => {
    const bad = (a: Record<string, string>, podCIDRs?: string[]) => {
      const r = nodeLease(node('n3', { ...flannelVxlan(), ...a }, podCIDRs), K);
      assert.ok(r && 'error' in r, JSON.stringify(r));
      return r.error;
    };
    assert.equal(bad({ [`${P}public-ip`]: 'not-an-ip' }), `annotation ${P}public-ip "not-an-ip" is not an IPv4 address`);
    assert.match(bad({ [`${P}backend-data`]: '{"VNI":1,' }), new RegExp(`annotation ${P}backend-data .* is not JSON`));
    assert.match(bad({ [`${P}backend-data`]: '{"VNI":1}' }), /backend-data: vxlan lease BackendData.VtepMAC is not a MAC address/);
    assert.match(bad({ [`${P}backend-data`]: 'null' }), /BackendData must be an object/);
    assert.match(bad({}, []), /has no spec.podCIDR/);
    assert.match(bad({}, ['10.244.3.0/24', 'fd00::/64', '10.1.0.0/24']), /pod cidrs should be IPv4\/IPv6 only or dualstack/);
    const noIp = nodeLease(node('n3', { [`${P}kube-subnet-manager`]: 'true' }), K);
    assert.deepEqual(noIp, { error: `it has no ${P}public-ip annotation` });
    assert.match(bad({ [`${P}backend-data`]: `{"VtepMAC":"${'a'.repeat(5000)}"}` }), /larger than 4096 bytes/);
  });
  it("quotes a bad value bounded, so a node's text cannot flood a log line", () => {
    const r = nodeLease(node('n3', { ...flannelVxlan(), [`${P}public-ip`]: 'x'.repeat(10_000) }), K);
    assert.ok(r && 'error' in r);
    assert.ok(r.error.length < 200, r.error);
  });
});

describe('what we publish (flannel AcquireLease)', () => {
  const vxlan = { publicIp: parseIp4('192.168.77.1'), backend: { type: 'vxlan' as const, vni: 1, vtepMac: MAC } };

  it("writes flanneld's values per backend", () => {
    assert.deepEqual(publishedBackend(vxlan.backend), { type: 'vxlan', data: `{"VNI":1,"VtepMAC":"${MAC}"}` });
    assert.deepEqual(publishedBackend({ type: 'udp' }), { type: '', data: 'null' });
    assert.deepEqual(publishedBackend({ type: 'host-gw' }), { type: 'host-gw', data: 'null' });
  });
  it('a fresh node gets all four annotations, keys sorted', () => {
    const p = annotationPatch({ 'node.alpha.kubernetes.io/ttl': '0' }, vxlan, K);
    assert.deepEqual(p, {
      patch: {
        metadata: {
          annotations: {
            [`${P}backend-data`]: `{"VNI":1,"VtepMAC":"${MAC}"}`,
            [`${P}backend-type`]: 'vxlan',
            [`${P}kube-subnet-manager`]: 'true',
            [`${P}public-ip`]: '192.168.77.1',
          },
        },
      },
      overwrite: null,
    });
    assert.deepEqual(Object.keys(p!.patch.metadata.annotations), Object.keys(p!.patch.metadata.annotations).sort());
  });
  it('an up-to-date node gets no patch; a changed one gets only what changed', () => {
    const current = flannelVxlan('192.168.77.1');
    assert.equal(annotationPatch(current, vxlan, K), null);
    const moved = annotationPatch(current, { ...vxlan, publicIp: parseIp4('192.168.77.9') }, K);
    assert.deepEqual(moved?.patch, { metadata: { annotations: { [`${P}public-ip`]: '192.168.77.9' } } });
  });
  it('udp writes backend-type "" (a missing key reads as "" but is still written, as Go does)', () => {
    const p = annotationPatch({ [`${P}public-ip`]: '192.168.77.1' }, { publicIp: parseIp4('192.168.77.1'), backend: { type: 'udp' } }, K);
    assert.deepEqual(p?.patch.metadata.annotations, { [`${P}backend-data`]: 'null', [`${P}backend-type`]: '', [`${P}kube-subnet-manager`]: 'true' });
  });
  it('public-ip-overwrite is published in place of our address', () => {
    const p = annotationPatch({ ...flannelVxlan('192.168.77.1'), [`${P}public-ip-overwrite`]: '203.0.113.7' }, vxlan, K);
    assert.deepEqual(p, { patch: { metadata: { annotations: { [`${P}public-ip`]: '203.0.113.7' } } }, overwrite: '203.0.113.7' });
    // Already published: flannel would send an empty patch each start; weft sends none.
    assert.equal(annotationPatch({ ...flannelVxlan('203.0.113.7'), [`${P}public-ip-overwrite`]: '203.0.113.7' }, vxlan, K), null);
  });
  it('node-public-ip is read (and checked) as the address to use', () => {
    assert.equal(storedPublicIp(node('n1', { [`${P}node-public-ip`]: '203.0.113.9' }), K), '203.0.113.9');
    assert.equal(storedPublicIp(node('n1', {}), K), null);
    assert.throws(() => storedPublicIp(node('n1', { [`${P}node-public-ip`]: 'nope' }), K), { message: `node "n1" annotation ${P}node-public-ip "nope" is not an IPv4 address` });
  });
  it("our previous VtepMAC comes back from our backend-data", () => {
    assert.deepEqual(annotatedBackend(flannelVxlan(), K), { backend: { type: 'vxlan', vni: 1, vtepMac: MAC } });
  });
  it("the condition patch is flanneld's, fields in Go's order", () => {
    const t = new Date('2025-03-04T05:06:07.891Z');
    assert.equal(
      JSON.stringify(networkAvailablePatch(t)),
      '{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"2025-03-04T05:06:07Z","lastTransitionTime":"2025-03-04T05:06:07Z","reason":"FlannelIsUp","message":"Flannel is running on this node"}]}}',
    );
  });
});

describe('net-conf.json with the kube subnet manager (ParseConfig only)', () => {
  it('takes SubnetLen and the rest as written, unchecked', () => {
    const c = loadNetConf('{"Network":"10.244.0.0/16","SubnetLen":31,"Backend":{"Type":"vxlan"}}', { checkSubnets: false });
    assert.equal(c.SubnetLen, 31);
    assert.deepEqual(c.Network, parseCidr4('10.244.0.0/16'));
    assert.throws(() => loadNetConf('{"Network":"10.244.0.0/16","SubnetLen":31}'), { message: 'SubnetLen must be less than /31' });
  });
  it('still needs a Network, IPv4, and a backend weft runs', () => {
    assert.throws(() => loadNetConf('{"Backend":{"Type":"vxlan"}}', { checkSubnets: false }), { message: 'please define a correct Network parameter in the flannel config' });
    assert.throws(() => loadNetConf('{"Network":"10.244.0.0/16","EnableIPv6":true}', { checkSubnets: false }), /IPv6 is not supported by weft yet/);
    assert.throws(() => loadNetConf('{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}', { checkSubnets: false }), /not supported by weft/);
  });
});

describe('client configuration (client-go BuildConfigFromFlags)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kubecfg-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const log = silentLogger();

  it("a missing kubeconfig is Go's stat error", () => {
    assert.throws(() => kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: path.join(tmp, 'nope'), env: {}, log }), {
      message: `fail to create kubernetes config: stat ${path.join(tmp, 'nope')}: no such file or directory`,
    });
  });
  it('--kube-api-url replaces the kubeconfig\'s server; alone it is the server', () => {
    const file = path.join(tmp, 'kc.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443' } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    assert.equal(kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: file, env: {}, log }).getCurrentCluster()?.server, 'https://10.0.0.1:6443');
    assert.equal(kubeConfigFromFlags({ apiUrl: 'https://10.9.9.9:443', kubeconfigFile: file, env: {}, log }).getCurrentCluster()?.server, 'https://10.9.9.9:443');
    assert.equal(kubeConfigFromFlags({ apiUrl: 'https://10.9.9.9:443/', kubeconfigFile: '', env: {}, log }).getCurrentCluster()?.server, 'https://10.9.9.9:443');
    assert.throws(() => kubeConfigFromFlags({ apiUrl: 'ftp://x', kubeconfigFile: '', env: {}, log }), /host must be a URL or a host:port pair: "ftp:\/\/x"/);
  });
  it('in-cluster: the service variables, then the token; a missing CA only warns', () => {
    assert.throws(() => kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: '', env: {}, log }, tmp), /unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined/);
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const sa = path.join(tmp, 'sa');
    fs.mkdirSync(sa);
    assert.throws(() => kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: '', env, log }, sa), { message: `fail to create kubernetes config: open ${sa}/token: no such file or directory` });
    fs.writeFileSync(path.join(sa, 'token'), 'secret');
    const kc = kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: '', env, log }, sa);
    assert.equal(kc.getCurrentCluster()?.server, 'https://10.96.0.1:443');
    assert.equal(kc.getCurrentCluster()?.caFile, undefined);
    fs.writeFileSync(path.join(sa, 'ca.crt'), '');
    assert.equal(kubeConfigFromFlags({ apiUrl: '', kubeconfigFile: '', env, log }, sa).getCurrentCluster()?.caFile, `${sa}/ca.crt`);
  });
});

describe('API failures, told plainly', () => {
  it('a 403 names the verb and the resource RBAC lacks', () => {
    const body = { kind: 'Status', message: 'nodes "n1" is forbidden: User "x" cannot patch resource "nodes/status" in API group "" at the cluster scope', reason: 'Forbidden', code: 403 };
    const text = describeApiError(new ApiException(403, 'Forbidden', body, {}), 'patch', 'nodes/status', 'n1');
    assert.equal(
      text,
      'patch nodes/status "n1": 403 nodes "n1" is forbidden: User "x" cannot patch resource "nodes/status" in API group "" at the cluster scope ' +
        '(RBAC: the ClusterRole bound to this service account must allow verb "patch" on resource "nodes/status"; deploy/kube-weft.yml\'s does)',
    );
  });
  it('a body given as text, a 401 and a connection error read as well', () => {
    assert.equal(describeApiError(new ApiException(404, 'x', '{"message":"nodes \\"n9\\" not found"}', {}), 'get', 'nodes', 'n9'), 'get nodes "n9": 404 nodes "n9" not found');
    assert.match(describeApiError(new ApiException(401, 'Unauthorized', undefined, {}), 'list', 'nodes'), /^list nodes: 401 Unauthorized \(the API server refused the credentials/);
    assert.equal(describeApiError(new Error('request to https://10.0.0.1/api/v1/nodes failed, reason: connect ECONNREFUSED 10.0.0.1:443'), 'list', 'nodes'), 'list nodes: request to https://10.0.0.1/api/v1/nodes failed, reason: connect ECONNREFUSED 10.0.0.1:443');
  });
});
