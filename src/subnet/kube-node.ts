// What flannel's kube subnet manager reads from and writes to a Node, as pure
// functions (pkg/subnet/kube/kube.go, annotations.go): the annotation keys a
// prefix gives, a node's subnet from spec.podCIDRs/podCIDR, a peer's lease
// from its annotations, the annotations we publish and the patch that
// publishes them, and the NetworkUnavailable condition. kube.ts does the
// HTTP; everything it decides is here, unit-tested without an API server.
//
// Where flannel reads more loosely than it writes, this reads as flannel
// writes: a peer's backend-data must be the JSON flannel publishes
// ({"VNI":1,"VtepMAC":"…"} for vxlan), decoded by the one lease decoder
// (src/store/lease-json.ts), and a node that does not parse is skipped with
// a reason naming the annotation, never half-used.
import { Address6 } from 'ip-address';

import { type Cidr4, formatCidr4, formatIp4, parseCidr4, parseIp4 } from '../cidr';
import { decodeBackend as decodeLeaseBackend, encodeVxlanBackendData, MAX_LEASE_VALUE_BYTES } from '../store/lease-json';
import type { Lease, LeaseAttrs, LeaseBackend } from '../store/types';

/** flannel's annotation names under one prefix (its `annotations` struct). */
export interface AnnotationKeys {
  kubeSubnetManager: string;
  backendData: string;
  backendV6Data: string;
  backendType: string;
  publicIp: string;
  publicIpv6: string;
  nodePublicIp: string;
  nodePublicIpv6: string;
  publicIpOverwrite: string;
  publicIpv6Overwrite: string;
}

/**
 * flannel's newAnnotations: at most one "/", "/" appended when there is
 * none, then "-" unless it ends in "/" or "-", then its pattern (matched as
 * Go's MatchString does: anchored at the end only). Throws flannel's errors.
 */
export function annotationKeys(prefix: string): AnnotationKeys {
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) throw new Error('subnet/kube: prefix can contain at most single slash');
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  if (!/(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/.test(p)) {
    throw new Error('subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*');
  }
  return {
    kubeSubnetManager: `${p}kube-subnet-manager`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    backendType: `${p}backend-type`,
    publicIp: `${p}public-ip`,
    publicIpv6: `${p}public-ipv6`,
    nodePublicIp: `${p}node-public-ip`,
    nodePublicIpv6: `${p}node-public-ipv6`,
    publicIpOverwrite: `${p}public-ip-overwrite`,
    publicIpv6Overwrite: `${p}public-ipv6-overwrite`,
  };
}

/** The parts of a Node (typed by the client, or raw from a watch) that matter here. */
export interface NodeLike {
  metadata?: { name?: string; annotations?: Record<string, string> | null; resourceVersion?: string };
  spec?: { podCIDR?: string; podCIDRs?: string[] | null };
}

export const nodeName = (n: NodeLike): string => n.metadata?.name ?? '';
export const nodeAnnotations = (n: NodeLike): Record<string, string> => n.metadata?.annotations ?? {};

/** A value for a message: quoted, bounded (annotations are anyone's text who may write nodes). */
export function shown(v: string): string {
  return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);
}

/**
 * A node's IPv4 subnet as flannel takes it: spec.podCIDRs (one or two
 * entries; the IPv4 one), else spec.podCIDR; more than two entries is
 * flannel's dual-stack error. Null when the node has none yet.
 */
export function nodeSubnet(n: NodeLike): Cidr4 | null {
  const name = nodeName(n);
  const cidrs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  if (cidrs.length === 0) return null;
  if (cidrs.length > 2) throw new Error(`node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`);
  let v4: Cidr4 | null = null;
  for (const c of cidrs) {
    if (c.includes(':')) {
      if (!Address6.isValid(c) || !c.includes('/')) throw new Error(`invalid CIDR address: ${c}`);
      continue;
    }
    v4 ??= parseCidr4(c);
  }
  if (!v4) throw new Error(`node "${name}" has no IPv4 podCIDR (${cidrs.join(', ')}); weft runs IPv4 networks only`);
  return v4;
}

/**
 * The lease a peer node publishes: null when it is not flannel's (no
 * kube-subnet-manager "true"), else the lease or the reason it cannot be
 * one, naming the annotation or field at fault.
 */
export function nodeLease(n: NodeLike, keys: AnnotationKeys): { lease: Lease } | { error: string } | null {
  const a = nodeAnnotations(n);
  if (a[keys.kubeSubnetManager] !== 'true') return null;
  const ip = a[keys.publicIp];
  if (ip === undefined) return { error: `it has no ${keys.publicIp} annotation` };
  let publicIp: number;
  try {
    publicIp = parseIp4(ip);
  } catch {
    return { error: `annotation ${keys.publicIp} ${shown(ip)} is not an IPv4 address` };
  }
  let subnet: Cidr4 | null;
  try {
    subnet = nodeSubnet(n);
  } catch (err) {
    return { error: `spec.podCIDRs: ${(err as Error).message}` };
  }
  if (!subnet) return { error: 'it has no spec.podCIDR' };
  const backend = annotatedBackend(a, keys);
  if ('error' in backend) return backend;
  return { lease: { subnet, publicIp, backend: backend.backend, expiration: null } };
}

/** backend-type and backend-data as a lease backend, or what is wrong with them. */
export function annotatedBackend(a: Record<string, string>, keys: AnnotationKeys): { backend: LeaseBackend } | { error: string } {
  const type = a[keys.backendType] ?? '';
  // Only vxlan's data means anything (udp and host-gw publish "null").
  let data: unknown = null;
  if (type === 'vxlan') {
    const text = a[keys.backendData] ?? '';
    if (Buffer.byteLength(text) > MAX_LEASE_VALUE_BYTES) return { error: `annotation ${keys.backendData} is larger than ${MAX_LEASE_VALUE_BYTES} bytes` };
    try {
      data = JSON.parse(text);
    } catch {
      return { error: `annotation ${keys.backendData} ${shown(text)} is not JSON` };
    }
  }
  try {
    return { backend: decodeLeaseBackend(type, data) };
  } catch (err) {
    return { error: `annotations ${keys.backendType}/${keys.backendData}: ${(err as Error).message}` };
  }
}

/** backend-type and backend-data exactly as flanneld writes them for our lease. */
export function publishedBackend(b: LeaseBackend): { type: string; data: string } {
  switch (b.type) {
    case 'udp':
      return { type: '', data: 'null' }; // flannel's udp lease has no BackendType and no BackendData
    case 'host-gw':
      return { type: 'host-gw', data: 'null' };
    case 'vxlan':
      return { type: 'vxlan', data: encodeVxlanBackendData(b) };
    case 'other':
      throw new Error(`weft does not publish leases of backend type "${b.name}"`);
  }
}

/**
 * The strategic-merge patch flanneld's AcquireLease sends to nodes/status
 * for our lease, or null when the node already says it all. Like
 * flannel's, it is computed only when something differs (backend-type,
 * backend-data, public-ip, kube-subnet-manager, or a public-ip-overwrite
 * that is not our address), and then carries just the annotations that
 * change (CreateTwoWayMergePatch), with public-ip taken from
 * public-ip-overwrite when the operator set one.
 */
export function annotationPatch(
  current: Record<string, string>,
  attrs: LeaseAttrs,
  keys: AnnotationKeys,
): { patch: { metadata: { annotations: Record<string, string> } }; overwrite: string | null } | null {
  const want = publishedBackend(attrs.backend);
  const ip = formatIp4(attrs.publicIp);
  // Go reads a missing key as "": a udp node with no backend-type is up to date on that one.
  const get = (k: string) => current[k] ?? '';
  const overwrite = get(keys.publicIpOverwrite);
  const differs =
    get(keys.backendData) !== want.data ||
    get(keys.backendType) !== want.type ||
    get(keys.publicIp) !== ip ||
    get(keys.kubeSubnetManager) !== 'true' ||
    (overwrite !== '' && overwrite !== ip);
  if (!differs) return null;
  const next: Record<string, string> = {
    [keys.backendType]: want.type,
    [keys.backendData]: want.data,
    [keys.publicIp]: overwrite !== '' ? overwrite : ip,
    [keys.kubeSubnetManager]: 'true',
  };
  const changed: Record<string, string> = {};
  for (const k of Object.keys(next).sort()) if (!(k in current) || current[k] !== next[k]) changed[k] = next[k];
  if (Object.keys(changed).length === 0) return null;
  return { patch: { metadata: { annotations: changed } }, overwrite: overwrite !== '' && overwrite !== ip ? overwrite : null };
}

/** metav1.Time on the wire: RFC 3339 to the second, UTC. */
const goTime = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * flanneld's CompleteLease patch (PatchStatus, a strategic merge on
 * nodes/status; conditions merge by type), fields in Go's struct order.
 */
export function networkAvailablePatch(now: Date): { status: { conditions: Record<string, string>[] } } {
  const t = goTime(now);
  return {
    status: {
      conditions: [
        { type: 'NetworkUnavailable', status: 'False', lastHeartbeatTime: t, lastTransitionTime: t, reason: 'FlannelIsUp', message: 'Flannel is running on this node' },
      ],
    },
  };
}

/** The node-public-ip annotation (flannel's GetStoredPublicIP), checked; null when unset. */
export function storedPublicIp(n: NodeLike, keys: AnnotationKeys): string | null {
  const v = nodeAnnotations(n)[keys.nodePublicIp];
  if (v === undefined || v === '') return null;
  try {
    parseIp4(v);
  } catch {
    throw new Error(`node "${nodeName(n)}" annotation ${keys.nodePublicIp} ${shown(v)} is not an IPv4 address`);
  }
  return v;
}

/** A subnet for messages as Go's %q prints an IP4Net. */
export const quotedCidr = (c: Cidr4): string => `"${formatCidr4(c)}"`;
