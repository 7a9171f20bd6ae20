// flannel's lease value, byte for byte, and its one decoder. A weft node and
// a flannel node read each other's leases, so the encoding follows Go's
// encoding/json on flannel's LeaseAttrs (pkg/lease/lease.go):
//   - fields in struct order: PublicIP, PublicIPv6, BackendType, BackendData;
//   - PublicIPv6 is a pointer without omitempty: `null` when unset;
//   - BackendType and BackendData are omitempty (udp leases carry neither;
//     host-gw leases carry no BackendData);
//   - BackendData for vxlan is vxlanLeaseAttrs, {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}.
// Decoding follows Go too: keys match case-insensitively (the last match
// wins), unknown keys (BackendV6Data, ...) are ignored, a MAC may be written
// as net.ParseMAC takes it. It is stricter than Go where Go would silently
// produce garbage: a lease without a valid PublicIP, a vxlan lease without a
// VNI and VtepMAC, or a value far larger than any flannel writes is refused
// with a message that says what is wrong (never the value itself), so the
// store can skip it with a warning naming the key.
import { formatIp4, parseIp4 } from '../cidr';
import { parseMac } from '../vtep';
import type { LeaseAttrs, LeaseBackend } from './types';

/**
 * flannel's values are ~150 bytes (dual stack ~300). A store that allows
 * megabytes (SQLite does; etcd caps at 1.5 MiB) must not let one writer make
 * every node hold and parse them.
 */
export const MAX_LEASE_VALUE_BYTES = 4096;
const MAX_VNI = 0xffffff;

/** A vxlan lease's BackendData as flanneld writes it, in etcd and in the backend-data annotation alike. */
export function encodeVxlanBackendData(b: { vni: number; vtepMac: string }): string {
  return `{"VNI":${b.vni},"VtepMAC":${JSON.stringify(b.vtepMac)}}`;
}

export function encodeLeaseValue(attrs: LeaseAttrs): string {
  const head = `{"PublicIP":${JSON.stringify(formatIp4(attrs.publicIp))},"PublicIPv6":null`;
  const b = attrs.backend;
  switch (b.type) {
    case 'udp':
      return `${head}}`;
    case 'host-gw':
      return `${head},"BackendType":"host-gw"}`;
    case 'vxlan':
      return `${head},"BackendType":"vxlan","BackendData":${encodeVxlanBackendData(b)}}`;
    case 'other':
      throw new Error(`weft does not write leases of backend type "${b.name}"`);
  }
}

/** Parses a lease value; throws an Error naming what is wrong. */
export function decodeLeaseValue(text: string): LeaseAttrs {
  const size = Buffer.byteLength(text);
  if (size > MAX_LEASE_VALUE_BYTES) throw new Error(`lease value is ${size} bytes, more than the ${MAX_LEASE_VALUE_BYTES} any flannel node writes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`lease value is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new Error('lease value is not a JSON object');
  const f = foldKeys(raw, ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData']);
  return { publicIp: decodePublicIp(f.PublicIP), backend: decodeBackend(f.BackendType, f.BackendData) };
}

function decodePublicIp(v: unknown): number {
  if (v === undefined || v === null) throw new Error('lease has no PublicIP');
  if (typeof v !== 'string') throw new Error(`lease PublicIP must be a string, got ${kind(v)}`);
  // Go's ip.IP4 goes through net.ParseIP(...).To4(), which takes ::ffff:a.b.c.d too.
  const text = v.toLowerCase().startsWith('::ffff:') ? v.slice(7) : v;
  try {
    return parseIp4(text);
  } catch {
    throw new Error('lease PublicIP is not an IPv4 address');
  }
}

/** BackendType and BackendData as a typed backend (the kube subnet manager reads them from annotations). */
export function decodeBackend(type: unknown, data: unknown): LeaseBackend {
  if (type === undefined || type === null || type === '' || type === 'udp') return { type: 'udp' };
  if (typeof type !== 'string') throw new Error(`lease BackendType must be a string, got ${kind(type)}`);
  if (type === 'host-gw') return { type: 'host-gw' };
  if (type !== 'vxlan') return { type: 'other', name: type.slice(0, 64) };
  if (!isObject(data)) throw new Error(`vxlan lease BackendData must be an object with VNI and VtepMAC, got ${kind(data)}`);
  const d = foldKeys(data, ['VNI', 'VtepMAC']);
  if (typeof d.VNI !== 'number' || !Number.isInteger(d.VNI) || d.VNI < 0 || d.VNI > MAX_VNI) {
    throw new Error(`vxlan lease BackendData.VNI must be an integer 0..${MAX_VNI}`);
  }
  const mac = typeof d.VtepMAC === 'string' ? parseMac(d.VtepMAC) : null;
  if (!mac) throw new Error('vxlan lease BackendData.VtepMAC is not a MAC address');
  return { type: 'vxlan', vni: d.VNI, vtepMac: mac };
}

/** Go's decoder: each wanted field takes the last key that matches it case-insensitively. */
function foldKeys(obj: Record<string, unknown>, wanted: string[]): Record<string, unknown> {
  const byLower = new Map(wanted.map((w) => [w.toLowerCase(), w]));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const name = byLower.get(k.toLowerCase());
    if (name) out[name] = v;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON kind of a bad value, never its content (a lease value is anyone's text). */
function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  return Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}
