// The lab API server speaks the Kubernetes protocol: kubectl, a client
// nobody here wrote, lists, annotates, patches status and watches nodes
// through it, and meets the real server's errors (401, 403, 404, 409, 415,
// 422, 410 Gone on a watch from a compacted resourceVersion). Where kubectl
// cannot say it (an unknown patch type, a bookmark), raw HTTPS does.
//
//   test process ── kubectl / node:https ──> 127.0.0.1:PORT  lab API server
//        └──────── admin.sock (unix) ──────────────┘          (its own process)
//
// The last test puts the server inside a namespace of its own and runs
// kubectl there, the certificate naming the namespace's address:
//
//   ns "<prefix>api": lo 192.168.77.10 ── lab API server :6443 <── kubectl (ip netns exec)
//
// A tier of its own (test/interop): what is checked is our lab part against
// a tool we did not write, not weft.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ADMIN_TOKEN, ADMIN_USER, FLANNEL_USER, flannelIdentity, KubeApiServer } from '../../lab/kube/apiserver-process';
import { kubectl, kubectlHasSubresource, type KubectlOptions, KubectlStream } from '../../lab/kube/kubectl';
import type { JsonObject } from '../../lab/kube/patch';
import { FLANNEL_RULES, grants } from '../../lab/kube/rbac';
import { deleteNamespaces, Netns, runPrefix } from '../../lab/netns';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('kap');
const FLANNEL_TOKEN = 'flannel-sa-token';
const READER_TOKEN = 'node-reader-token';
const READER_USER = 'system:serviceaccount:default:node-reader';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kubeapi-'));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Raw {
  status: number;
  body: JsonObject;
}

/** One HTTPS request to the server, trusting only its CA. */
function raw(s: KubeApiServer, method: string, urlPath: string, o: { token?: string; body?: unknown; contentType?: string } = {}): Promise<Raw> {
  const text = o.body === undefined ? '' : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  if (o.contentType) headers['Content-Type'] = o.contentType;
  return new Promise((resolve, reject) => {
    const req = https.request(`${s.url}${urlPath}`, { method, headers, ca: fs.readFileSync(s.caCert), timeout: 10_000 }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as JsonObject }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** A raw watch: its events as they arrive, one JSON object per line. */
class RawWatch {
  readonly events: { type: string; object: JsonObject }[] = [];
  status = 0;
  ended = false;
  /** The stream was finished by the server (not cut). */
  complete = false;
  private req: ReturnType<typeof https.get>;

  constructor(s: KubeApiServer, query: string, urlPath = '/api/v1/nodes?watch=true&') {
    let buf = '';
    this.req = https.get(`${s.url}${urlPath}${query}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` }, ca: fs.readFileSync(s.caCert) }, (res) => {
      this.status = res.statusCode ?? 0;
      res.on('end', () => (this.complete = true));
      res.setEncoding('utf8').on('data', (c: string) => {
        buf += c;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) if (l) this.events.push(JSON.parse(l));
      });
      res.on('close', () => (this.ended = true));
    });
    this.req.on('error', () => (this.ended = true));
  }

  waitFor(what: string, pred: (e: { type: string; object: JsonObject }) => boolean, ms = 5000) {
    return until(`watch event: ${what}`, ms, async () => this.events.find(pred));
  }

  close(): void {
    this.req.destroy();
  }
}

const conditions = (n: JsonObject) => (n.status as JsonObject).conditions as JsonObject[];
const annotations = (n: JsonObject) => ((n.metadata as JsonObject).annotations ?? {}) as Record<string, string>;
const rvOf = (n: JsonObject) => Number((n.metadata as JsonObject).resourceVersion);

describe('lab API server, driven by kubectl', () => {
  let s: KubeApiServer;
  let admin: KubectlOptions;
  let flannel: KubectlOptions;

  before(async () => {
    s = await KubeApiServer.start({ dir: path.join(tmp, 'loopback'), bookmarkMs: 300 });
    await s.addUser(FLANNEL_TOKEN, flannelIdentity());
    await s.addUser(READER_TOKEN, { user: READER_USER, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }] });
    admin = { kubeconfig: s.kubeconfig(ADMIN_TOKEN, ADMIN_USER) };
    flannel = { kubeconfig: s.kubeconfig(FLANNEL_TOKEN, FLANNEL_USER) };
    const notYet = { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated', message: 'Node created without a route' };
    const ready = { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' };
    await s.addNode({ name: 'n1', podCIDR: '10.244.1.0/24', internalIP: '192.168.77.1', conditions: [ready, notYet] });
    await s.addNode({ name: 'n2', podCIDR: '10.244.2.0/24', internalIP: '192.168.77.2' });
  });
  after(() => s?.stop());

  it('get nodes -o json: real-looking Node objects, listed in chunks of 500', async () => {
    const r = await kubectl(['get', 'nodes', '-o', 'json'], admin);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { items: JsonObject[] };
    assert.deepEqual(list.items.map((n) => (n.metadata as JsonObject).name), ['n1', 'n2']);
    const n1 = list.items[0];
    assert.equal(n1.apiVersion, 'v1');
    assert.equal(n1.kind, 'Node');
    const m = n1.metadata as JsonObject;
    assert.match(m.uid as string, /^[0-9a-f-]{36}$/);
    assert.match(m.resourceVersion as string, /^[0-9]+$/);
    assert.match(m.creationTimestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(n1.spec, { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] });
    assert.deepEqual((n1.status as JsonObject).addresses, [{ type: 'InternalIP', address: '192.168.77.1' }, { type: 'Hostname', address: 'n1' }]);
    assert.deepEqual(conditions(n1).map((c) => c.type), ['Ready', 'NetworkUnavailable']);
    assert.ok(s.requests().some((q) => q.verb === 'list' && q.url.includes('limit=500') && q.user === ADMIN_USER), 'kubectl listed with limit=500');
  });

  it('annotate node: the annotation is stored and the resourceVersion moves', async () => {
    const before = (await s.node('n1'))!;
    const r = await kubectl(['annotate', 'node', 'n1', 'flannel.alpha.coreos.com/public-ip=192.168.77.1'], admin);
    assert.equal(r.code, 0, r.stderr);
    const after = (await s.node('n1'))!;
    assert.equal(annotations(after)['flannel.alpha.coreos.com/public-ip'], '192.168.77.1');
    assert.ok(rvOf(after) > rvOf(before));
    assert.equal((after.metadata as JsonObject).uid, (before.metadata as JsonObject).uid);
  });

  it('patch node --subresource=status: NetworkUnavailable merged by type, other conditions kept', async () => {
    const flannelCondition = { type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node' };
    if (await kubectlHasSubresource(admin)) {
      const r = await kubectl(['patch', 'node', 'n1', '--subresource=status', '-p', JSON.stringify({ status: { conditions: [flannelCondition] } })], admin);
      assert.equal(r.code, 0, r.stderr);
    } else {
      // This kubectl (Debian's 1.20) has no `patch --subresource`. The closest
      // form it has writes the status subresource whole: GET it, change the
      // condition of that type, PUT it back (`replace --raw`; --validate=false
      // because validation would need /openapi/v2, which the lab does not serve).
      const got = await kubectl(['get', '--raw', '/api/v1/nodes/n1/status'], admin);
      assert.equal(got.code, 0, got.stderr);
      const node = JSON.parse(got.stdout) as JsonObject;
      (node.status as JsonObject).conditions = conditions(node).map((c) => (c.type === 'NetworkUnavailable' ? flannelCondition : c));
      const file = path.join(tmp, 'n1-status.json');
      fs.writeFileSync(file, JSON.stringify(node));
      const r = await kubectl(['replace', '--validate=false', '--raw', '/api/v1/nodes/n1/status', '-f', file], admin);
      assert.equal(r.code, 0, r.stderr);
    }
    const n1 = (await s.node('n1'))!;
    assert.deepEqual(conditions(n1).map((c) => [c.type, c.status]), [
      ['Ready', 'True'],
      ['NetworkUnavailable', 'False'],
    ]);
    assert.equal(conditions(n1)[1].reason, 'FlannelIsUp');

    // The main resource does not write status, as on a real server.
    const r = await kubectl(['patch', 'node', 'n1', '--type=merge', '-p', '{"status":{"conditions":[]}}'], admin);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(conditions((await s.node('n1'))!).length, 2);
  });

  it('get nodes --watch: a change made meanwhile arrives as an event', async () => {
    const w = new KubectlStream(['get', 'nodes', '--watch', '-o', 'json', '--output-watch-events'], admin);
    type Ev = { type: string; object: JsonObject };
    const named = (e: Ev, name: string) => (e.object?.metadata as JsonObject | undefined)?.name === name;
    try {
      await w.waitFor<Ev>('lists n2', 10_000, (e) => e.type === 'ADDED' && named(e, 'n2'));
      const n2 = (await s.node('n2'))!;
      await s.putNode({ ...n2, metadata: { ...(n2.metadata as JsonObject), labels: { ...((n2.metadata as JsonObject).labels as JsonObject), changed: 'yes' } } });
      const ev = await w.waitFor<Ev>('sees the label', 5_000, (e) => e.type === 'MODIFIED' && named(e, 'n2'));
      assert.equal(((ev.object.metadata as JsonObject).labels as JsonObject).changed, 'yes');
      await s.addNode({ name: 'n3', podCIDR: '10.244.3.0/24' });
      await w.waitFor<Ev>('sees n3 added', 5_000, (e) => e.type === 'ADDED' && named(e, 'n3'));
      await s.deleteNode('n3');
      await w.waitFor<Ev>('sees n3 deleted', 5_000, (e) => e.type === 'DELETED' && named(e, 'n3'));
    } finally {
      w.stop();
    }
  });

  it('a bad token is 401, for kubectl and on the wire; no token too', async () => {
    const bad = { kubeconfig: s.kubeconfig('not-a-token', 'nobody') };
    const r = await kubectl(['get', 'nodes'], bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Unauthorized/);
    const wire = await raw(s, 'GET', '/api/v1/nodes', { token: 'not-a-token' });
    assert.equal(wire.status, 401);
    assert.deepEqual(wire.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    assert.equal((await raw(s, 'GET', '/version')).status, 401);
  });

  it("a forbidden verb is 403 with the real server's text, and the access record shows what was asked", async () => {
    // flannel's role: it may patch nodes/status, not nodes.
    const r = await kubectl(['annotate', 'node', 'n1', 'x.example/y=z'], flannel);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\): nodes "n1" is forbidden: User "system:serviceaccount:kube-flannel:flannel" cannot patch resource "nodes" in API group "" at the cluster scope/);

    const statusPatch = { metadata: { annotations: { 'flannel.alpha.coreos.com/backend-type': 'vxlan' } } };
    const ok = await raw(s, 'PATCH', '/api/v1/nodes/n1/status', { token: FLANNEL_TOKEN, body: statusPatch, contentType: 'application/strategic-merge-patch+json' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(annotations((await s.node('n1'))!)['flannel.alpha.coreos.com/backend-type'], 'vxlan', 'annotations go through the status subresource');

    const denied = await raw(s, 'PATCH', '/api/v1/nodes/n1/status', { token: READER_TOKEN, body: statusPatch, contentType: 'application/strategic-merge-patch+json' });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'nodes "n1" is forbidden: User "system:serviceaccount:default:node-reader" cannot patch resource "nodes/status" in API group "" at the cluster scope',
      reason: 'Forbidden',
      details: { name: 'n1', kind: 'nodes' },
      code: 403,
    });
    assert.deepEqual(s.access(FLANNEL_USER), { allowed: ['get nodes', 'patch nodes/status'], denied: ['patch nodes'] });
    assert.ok(s.access(FLANNEL_USER).allowed.every((a) => grants(FLANNEL_RULES).includes(a)), 'comparable with the role');
  });

  it('pods: GET by name gives spec.nodeName; a missing one is 404 NotFound', async () => {
    await s.addPod('kube-flannel', 'kube-flannel-ds-abcde', 'n1');
    const r = await kubectl(['get', 'pod', '-n', 'kube-flannel', 'kube-flannel-ds-abcde', '-o', 'jsonpath={.spec.nodeName}'], flannel);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'n1');
    const missing = await kubectl(['get', 'pod', '-n', 'kube-flannel', 'nope'], flannel);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);
    const node404 = await raw(s, 'GET', '/api/v1/nodes/nope', { token: ADMIN_TOKEN });
    assert.equal(node404.status, 404);
    assert.deepEqual(node404.body.details, { name: 'nope', kind: 'nodes' });
  });

  it('an unknown patch type is 415; a body that is not valid is 400 or 422', async () => {
    const u = await raw(s, 'PATCH', '/api/v1/nodes/n1/status', { token: ADMIN_TOKEN, body: '{}', contentType: 'application/x-weft-patch' });
    assert.equal(u.status, 415);
    assert.equal(u.body.reason, 'UnsupportedMediaType');
    assert.equal(
      u.body.message,
      'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json',
    );
    const notJson = await raw(s, 'PATCH', '/api/v1/nodes/n1', { token: ADMIN_TOKEN, body: '{"metadata":', contentType: 'application/merge-patch+json' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.message, 'Invalid JSON Patch');
    const jsonPatchMiss = await raw(s, 'PATCH', '/api/v1/nodes/n1', {
      token: ADMIN_TOKEN,
      body: [{ op: 'replace', path: '/metadata/annotations/absent', value: 'x' }],
      contentType: 'application/json-patch+json',
    });
    assert.equal(jsonPatchMiss.status, 422);
    // kubectl shows a 422 from the Status details, as for a real server.
    const cidr = await kubectl(['patch', 'node', 'n1', '-p', '{"spec":{"podCIDR":"10.9.0.0/24","podCIDRs":["10.9.0.0/24"]}}'], admin);
    assert.notEqual(cidr.code, 0);
    assert.match(cidr.stderr, /The Node "n1" is invalid: spec\.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid/);
    assert.equal(((await s.node('n1'))!.spec as JsonObject).podCIDR, '10.244.1.0/24');
  });

  it('a patch carrying a resourceVersion that is not the stored one is 409 Conflict', async () => {
    const r = await kubectl(['annotate', 'node', 'n2', '--resource-version=1', 'stale.example/write=1'], admin);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error from server \(Conflict\): Operation cannot be fulfilled on nodes "n2": the object has been modified; please apply your changes to the latest version and try again/);
    assert.equal(annotations((await s.node('n2'))!)['stale.example/write'], undefined);
    const current = (await s.node('n2'))!;
    const ok = await kubectl(['annotate', 'node', 'n2', `--resource-version=${rvOf(current)}`, 'fresh.example/write=1'], admin);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('watch from an old resourceVersion replays history; after compaction it is 410 Gone; bookmarks come', async () => {
    const start = rvOf((await s.node('n1'))!);
    await kubectl(['label', 'node', 'n1', 'history=1'], admin);
    const replay = new RawWatch(s, `resourceVersion=${start}`);
    try {
      const ev = await replay.waitFor('the label change since start', (e) => e.type === 'MODIFIED' && ((e.object.metadata as JsonObject).labels as JsonObject).history === '1');
      assert.ok(rvOf(ev.object) > start);
      assert.ok(!replay.events.some((e) => e.type === 'ADDED'), 'a watch from a resourceVersion sends no initial state');
    } finally {
      replay.close();
    }

    const floor = await s.compact();
    const old = new RawWatch(s, `resourceVersion=${start}`);
    await until('the expired watch ends', 5000, async () => old.ended);
    assert.equal(old.status, 200, 'the error comes as an event, as from the real watch cache');
    assert.deepEqual(old.events, [
      {
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${start} (${floor})`, reason: 'Expired', code: 410 },
      },
    ]);

    const bm = new RawWatch(s, `resourceVersion=${floor}&allowWatchBookmarks=true`);
    try {
      const b = await bm.waitFor('a bookmark', (e) => e.type === 'BOOKMARK', 3000);
      assert.deepEqual(b.object, { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(floor), creationTimestamp: null } });
      assert.equal(await s.dropWatches('end'), 1);
      await until('the ended watch ends', 3000, async () => bm.ended);
      assert.ok(bm.complete, "'end' finishes the stream");
    } finally {
      bm.close();
    }
    const cut = new RawWatch(s, `resourceVersion=${floor}`);
    try {
      await until('the watch is open', 3000, async () => cut.status === 200);
      assert.equal(await s.dropWatches('cut'), 1);
      await until('the cut watch ends', 3000, async () => cut.ended);
      assert.ok(!cut.complete, "'cut' resets the connection");
    } finally {
      cut.close();
    }
  });

  it('timeoutSeconds ends a watch cleanly when it runs out', async () => {
    const t0 = Date.now();
    const w = new RawWatch(s, `resourceVersion=${await s.resourceVersion()}&timeoutSeconds=1`);
    try {
      await until('the watch times out', 4000, async () => w.ended);
      assert.ok(w.complete);
      assert.ok(Date.now() - t0 >= 900, 'not before its time');
    } finally {
      w.close();
    }
  });

  it('a watch narrowed to one node (fieldSelector, or the legacy /watch/ path) sees only that node', async () => {
    const from = await s.resourceVersion();
    const bySelector = new RawWatch(s, `resourceVersion=${from}&fieldSelector=metadata.name%3Dn2`);
    const byPath = new RawWatch(s, `resourceVersion=${from}`, '/api/v1/watch/nodes/n2?');
    try {
      await kubectl(['label', 'node', 'n1', 'narrow=1'], admin);
      await kubectl(['label', 'node', 'n2', 'narrow=2'], admin);
      for (const w of [bySelector, byPath]) {
        await w.waitFor('n2 changes', (e) => e.type === 'MODIFIED' && ((e.object.metadata as JsonObject).labels as JsonObject).narrow === '2');
        assert.deepEqual([...new Set(w.events.map((e) => (e.object.metadata as JsonObject).name))], ['n2']);
      }
    } finally {
      bySelector.close();
      byPath.close();
    }
  });

  it('lists in pages that stay consistent while nodes change; a compacted continue is 410', async () => {
    const page1 = await raw(s, 'GET', '/api/v1/nodes?limit=1', { token: ADMIN_TOKEN });
    assert.equal(page1.status, 200);
    const meta1 = page1.body.metadata as JsonObject;
    assert.equal((page1.body.items as JsonObject[]).length, 1);
    assert.equal(meta1.remainingItemCount, 1);
    assert.equal(typeof meta1.continue, 'string');
    await s.addNode({ name: 'n1a', podCIDR: '10.244.9.0/24' }); // sorts into page 2, but is not in this list's snapshot
    const n2 = (await s.node('n2'))!;
    await s.putNode({ ...n2, metadata: { ...(n2.metadata as JsonObject), labels: { late: 'yes' } } });
    const page2 = await raw(s, 'GET', `/api/v1/nodes?limit=1&continue=${encodeURIComponent(meta1.continue as string)}`, { token: ADMIN_TOKEN });
    assert.equal(page2.status, 200);
    const items = page2.body.items as JsonObject[];
    assert.deepEqual(items.map((n) => (n.metadata as JsonObject).name), ['n2']);
    assert.equal(((items[0].metadata as JsonObject).labels as JsonObject).late, undefined, 'the page shows n2 as it was at the first page');
    assert.equal((page2.body.metadata as JsonObject).continue, undefined);

    await s.compact();
    const gone = await raw(s, 'GET', `/api/v1/nodes?limit=1&continue=${encodeURIComponent(meta1.continue as string)}`, { token: ADMIN_TOKEN });
    assert.equal(gone.status, 410);
    assert.equal(gone.body.reason, 'Expired');
    await s.deleteNode('n1a');
  });

  it('fails the next request of a kind with a given status, then serves again', async () => {
    await s.failNext({ match: { verb: 'list', resource: 'nodes' }, count: 1, code: 503 });
    const r = await kubectl(['get', 'nodes', '-o', 'name'], admin);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ServiceUnavailable/);
    const again = await kubectl(['get', 'nodes', '-o', 'name'], admin);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'node/n1\nnode/n2\n');
  });

  it('a restart keeps the nodes and their resourceVersions, which keep increasing; old watches get 410', async () => {
    const before = (await s.node('n1'))!;
    const lastRv = Math.max(...(await Promise.all(['n1', 'n2'].map(async (n) => rvOf((await s.node(n))!)))));
    await s.restart();
    const r = await kubectl(['get', 'node', 'n1', '-o', 'json'], admin);
    assert.equal(r.code, 0, r.stderr);
    const after = JSON.parse(r.stdout) as JsonObject;
    assert.deepEqual(after.metadata, before.metadata);
    assert.deepEqual(after.status, before.status);
    const lab = await kubectl(['label', 'node', 'n2', 'after=restart'], admin);
    assert.equal(lab.code, 0, lab.stderr);
    assert.ok(rvOf((await s.node('n2'))!) > lastRv, 'resourceVersion continues from before the restart');
    const old = new RawWatch(s, `resourceVersion=${lastRv - 1}`);
    await until('the pre-restart watch ends', 5000, async () => old.ended);
    assert.equal(old.events[0]?.object.code, 410);
    assert.equal(old.events[0]?.object.reason, 'Expired');
  });
});

describe('lab API server in a namespace', () => {
  it('serves kubectl run in that namespace, its certificate naming the address; the admin socket reaches it from here', async () => {
    const ns = Netns.create(`${PREFIX}api`);
    ns.ip('addr', 'add', '192.168.77.10/32', 'dev', 'lo');
    const s = await KubeApiServer.start({ dir: path.join(tmp, 'netns'), ns, listenIp: '192.168.77.10' });
    try {
      await s.addNode({ name: 'in-ns', podCIDR: '10.244.5.0/24' });
      const o = { kubeconfig: s.kubeconfig(ADMIN_TOKEN, ADMIN_USER), ns };
      const r = await kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].spec.podCIDR}'], o);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '10.244.5.0/24');
      assert.equal(s.url, 'https://192.168.77.10:6443');

      // A pod's service-account files work as they are: kubectl takes the token and CA from them.
      const sa = s.inClusterFiles(path.join(tmp, 'sa'), ADMIN_TOKEN, 'kube-flannel');
      assert.deepEqual(sa.env, { KUBERNETES_SERVICE_HOST: '192.168.77.10', KUBERNETES_SERVICE_PORT: '6443' });
      assert.equal(fs.readFileSync(path.join(sa.dir, 'namespace'), 'utf8'), 'kube-flannel');
      const bare = path.join(tmp, 'sa', 'kubeconfig-empty.json');
      fs.writeFileSync(bare, '{"apiVersion":"v1","kind":"Config"}');
      const viaFiles = await kubectl(
        ['--server', s.url, '--certificate-authority', path.join(sa.dir, 'ca.crt'), '--token', fs.readFileSync(path.join(sa.dir, 'token'), 'utf8'), 'get', 'nodes', '-o', 'name'],
        { kubeconfig: bare, ns },
      );
      assert.equal(viaFiles.code, 0, viaFiles.stderr);
      assert.equal(viaFiles.stdout, 'node/in-ns\n');
    } finally {
      await s.stop();
      ns.delete();
    }
  });
});
