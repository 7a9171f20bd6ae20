// The lab API server's pure parts: the three patch types as the real server
// applies them to a Node, and RBAC matching with the real 403 text. The
// server process itself is tested with kubectl in test/interop/kube-api.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, type JsonObject, NODE_LISTS, PatchError } from '../../lab/kube/patch';
import { allowed, FLANNEL_RULES, forbiddenMessage, grants, type RequestAttributes } from '../../lab/kube/rbac';

const node = (): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1', resourceVersion: '7', annotations: { 'a.example/keep': 'x', 'a.example/drop': 'y' }, labels: { role: 'w' } },
  spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
  status: {
    addresses: [{ type: 'InternalIP', address: '192.168.1.1' }],
    conditions: [
      { type: 'Ready', status: 'True', reason: 'KubeletReady' },
      { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' },
    ],
  },
});

function patchError(fn: () => unknown): PatchError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PatchError) return err;
    throw err;
  }
  assert.fail('no PatchError');
}

describe('strategic merge patch (Node)', () => {
  const smp = (doc: JsonObject, patch: unknown) => applyStrategicMergePatch(doc, JSON.stringify(patch), NODE_LISTS);

  it('merges status.conditions by type: the named one changes, the others stay, a new one is appended', () => {
    const out = smp(node(), {
      status: {
        conditions: [
          { type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node' },
          { type: 'MemoryPressure', status: 'False' },
        ],
      },
    });
    assert.deepEqual((out.status as JsonObject).conditions, [
      { type: 'Ready', status: 'True', reason: 'KubeletReady' },
      { type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node' },
      { type: 'MemoryPressure', status: 'False' },
    ]);
    assert.deepEqual((out.status as JsonObject).addresses, (node().status as JsonObject).addresses, 'untouched fields are kept');
  });

  it('adds and deletes annotations (null deletes a key) and leaves the original alone', () => {
    const before = node();
    const out = smp(before, { metadata: { annotations: { 'flannel.alpha.coreos.com/public-ip': '192.168.1.1', 'a.example/drop': null } } });
    assert.deepEqual((out.metadata as JsonObject).annotations, { 'a.example/keep': 'x', 'flannel.alpha.coreos.com/public-ip': '192.168.1.1' });
    assert.deepEqual(before, node(), 'input not mutated');
  });

  it('honours $patch: delete in a keyed list and $patch: replace on a list and a map', () => {
    const del = smp(node(), { status: { conditions: [{ type: 'Ready', $patch: 'delete' }] } });
    assert.deepEqual(((del.status as JsonObject).conditions as JsonObject[]).map((c) => c.type), ['NetworkUnavailable']);
    const rep = smp(node(), { status: { conditions: [{ $patch: 'replace' }, { type: 'X', status: 'True' }] } });
    assert.deepEqual((rep.status as JsonObject).conditions, [{ type: 'X', status: 'True' }]);
    const map = smp(node(), { metadata: { labels: { $patch: 'replace', only: 'this' } } });
    assert.deepEqual((map.metadata as JsonObject).labels, { only: 'this' });
  });

  it('merges spec.podCIDRs as a set, honours $deleteFromPrimitiveList, ignores $setElementOrder', () => {
    const out = smp(node(), {
      spec: { podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'] },
      status: { '$setElementOrder/conditions': [{ type: 'Ready' }], conditions: [{ type: 'Ready', status: 'False' }] },
    });
    assert.deepEqual((out.spec as JsonObject).podCIDRs, ['10.244.1.0/24', 'fd00:1::/64']);
    assert.equal((((out.status as JsonObject).conditions as JsonObject[])[0] as JsonObject).status, 'False');
    assert.ok(!('$setElementOrder/conditions' in (out.status as JsonObject)), 'directives are not stored');
    const del = smp(out, { spec: { '$deleteFromPrimitiveList/podCIDRs': ['fd00:1::/64'] } });
    assert.deepEqual((del.spec as JsonObject).podCIDRs, ['10.244.1.0/24']);
  });

  it('replaces a list it has no strategy for', () => {
    const out = smp({ ...node(), spec: { taints: [{ key: 'a', effect: 'NoSchedule' }] } }, { spec: { taints: [{ key: 'b', effect: 'NoSchedule' }] } });
    assert.deepEqual((out.spec as JsonObject).taints, [{ key: 'b', effect: 'NoSchedule' }]);
  });

  it('rejects what the real server rejects, with its codes', () => {
    assert.equal(patchError(() => applyStrategicMergePatch(node(), '{"metadata":', NODE_LISTS)).code, 400);
    assert.equal(patchError(() => applyStrategicMergePatch(node(), '[]', NODE_LISTS)).code, 400);
    const noKey = patchError(() => smp(node(), { status: { conditions: [{ status: 'False' }] } }));
    assert.equal(noKey.code, 500);
    assert.match(noKey.message, /does not contain declared merge key: type/);
  });
});

describe('merge patch (RFC 7386)', () => {
  it('merges maps, deletes on null, replaces lists whole', () => {
    const out = applyMergePatch(node(), JSON.stringify({ metadata: { annotations: { 'a.example/drop': null, n: 'v' } }, status: { conditions: [{ type: 'Only' }] } })) as JsonObject;
    assert.deepEqual((out.metadata as JsonObject).annotations, { 'a.example/keep': 'x', n: 'v' });
    assert.deepEqual((out.status as JsonObject).conditions, [{ type: 'Only' }]);
  });

  it('answers a body that is not JSON with 400 "Invalid JSON Patch"', () => {
    const e = patchError(() => applyMergePatch(node(), '{nope'));
    assert.equal(e.code, 400);
    assert.equal(e.message, 'Invalid JSON Patch');
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('adds an annotation whose key holds a "/" (escaped ~1), replaces, removes, tests', () => {
    const ops = [
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/metadata/annotations/flannel.alpha.coreos.com~1backend-type', value: 'vxlan' },
      { op: 'replace', path: '/metadata/labels/role', value: 'x' },
      { op: 'remove', path: '/metadata/annotations/a.example~1drop' },
      { op: 'add', path: '/status/conditions/-', value: { type: 'Z' } },
      { op: 'copy', from: '/metadata/labels/role', path: '/metadata/labels/copy' },
      { op: 'move', from: '/metadata/labels/copy', path: '/metadata/labels/moved' },
    ];
    const out = applyJsonPatch(node(), JSON.stringify(ops)) as JsonObject;
    assert.deepEqual((out.metadata as JsonObject).annotations, { 'a.example/keep': 'x', 'flannel.alpha.coreos.com/backend-type': 'vxlan' });
    assert.deepEqual((out.metadata as JsonObject).labels, { role: 'x', moved: 'x' });
    assert.equal(((out.status as JsonObject).conditions as JsonObject[])[2].type, 'Z');
  });

  it('is all or nothing: a failed test is 422 and the document is unchanged', () => {
    const before = node();
    const e = patchError(() =>
      applyJsonPatch(before, JSON.stringify([{ op: 'add', path: '/metadata/labels/a', value: 'b' }, { op: 'test', path: '/metadata/resourceVersion', value: '6' }])),
    );
    assert.equal(e.code, 422);
    assert.deepEqual(before, node());
  });

  it('answers 422 for a path that is not there and an unknown op, 400 for a body that is not a list', () => {
    assert.equal(patchError(() => applyJsonPatch(node(), JSON.stringify([{ op: 'add', path: '/metadata/nope/x', value: 1 }]))).code, 422);
    assert.equal(patchError(() => applyJsonPatch(node(), JSON.stringify([{ op: 'remove', path: '/metadata/labels/absent' }]))).code, 422);
    assert.equal(patchError(() => applyJsonPatch(node(), JSON.stringify([{ op: 'frob', path: '/metadata' }]))).code, 422);
    assert.equal(patchError(() => applyJsonPatch(node(), '{"op":"add"}')).code, 400);
    assert.equal(patchError(() => applyJsonPatch(node(), 'not json')).code, 400);
  });
});

describe('RBAC rules', () => {
  const attrs = (verb: string, resource: string, subresource = '', name = '', namespace = ''): RequestAttributes => ({
    verb,
    apiGroup: '',
    resource,
    subresource,
    namespace,
    name,
  });

  it("flannel's ClusterRole allows exactly its verbs, a subresource being a resource of its own", () => {
    assert.ok(allowed(FLANNEL_RULES, attrs('list', 'nodes')));
    assert.ok(allowed(FLANNEL_RULES, attrs('watch', 'nodes')));
    assert.ok(allowed(FLANNEL_RULES, attrs('patch', 'nodes', 'status', 'n1')));
    assert.ok(allowed(FLANNEL_RULES, attrs('get', 'pods', '', 'p', 'kube-flannel')));
    assert.ok(!allowed(FLANNEL_RULES, attrs('patch', 'nodes', '', 'n1')), 'nodes patch is not nodes/status patch');
    assert.ok(!allowed(FLANNEL_RULES, attrs('get', 'nodes', 'status', 'n1')));
    assert.ok(!allowed(FLANNEL_RULES, attrs('list', 'pods', '', '', 'kube-flannel')));
  });

  it('matches wildcards, */subresource and resourceNames as RBAC does', () => {
    assert.ok(allowed([{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }], attrs('update', 'nodes', 'status', 'n1')));
    assert.ok(allowed([{ apiGroups: [''], resources: ['*/status'], verbs: ['patch'] }], attrs('patch', 'nodes', 'status', 'n1')));
    const named = [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'], resourceNames: ['n1'] }];
    assert.ok(allowed(named, attrs('get', 'nodes', '', 'n1')));
    assert.ok(!allowed(named, attrs('get', 'nodes', '', 'n2')));
    assert.ok(!allowed(named, attrs('list', 'nodes')), 'resourceNames never match a collection');
    assert.ok(!allowed([{ apiGroups: ['apps'], resources: ['*'], verbs: ['*'] }], attrs('get', 'nodes', '', 'n1')), 'another group');
  });

  it("lists what flannel's role grants in the access record's terms", () => {
    assert.deepEqual(grants(FLANNEL_RULES), ['get nodes', 'get pods', 'list nodes', 'patch nodes/status', 'watch nodes']);
  });

  it("words a denial as the real server's 403", () => {
    const u = 'system:serviceaccount:kube-flannel:flannel';
    assert.equal(
      forbiddenMessage(u, attrs('patch', 'nodes', 'status', 'n1')),
      'nodes "n1" is forbidden: User "system:serviceaccount:kube-flannel:flannel" cannot patch resource "nodes/status" in API group "" at the cluster scope',
    );
    assert.equal(forbiddenMessage(u, attrs('list', 'nodes')), 'nodes is forbidden: User "system:serviceaccount:kube-flannel:flannel" cannot list resource "nodes" in API group "" at the cluster scope');
    assert.equal(
      forbiddenMessage(u, attrs('get', 'pods', '', 'p1', 'kube-flannel')),
      'pods "p1" is forbidden: User "system:serviceaccount:kube-flannel:flannel" cannot get resource "pods" in API group "" in the namespace "kube-flannel"',
    );
  });
});
