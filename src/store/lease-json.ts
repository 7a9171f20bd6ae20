// flannel's lease value, byte for byte. A weft node and a flannel node read
// each other's leases, so the encoding follows Go's encoding/json on
// flannel's LeaseAttrs (pkg/subnet/subnet.go):
//   - fields in struct order: PublicIP, PublicIPv6, BackendType, BackendData;
//   - PublicIPv6 is a pointer without omitempty: `null` when unset;
//   - BackendType and BackendData are omitempty (udp leases carry neither);
//   - BackendData is a json.RawMessage, written compact; for vxlan it is
//     vxlanLeaseAttrs, {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}, in that order;
//   - strings escape <, >, & and U+2028/9 as \u003c... (Go's HTML-safe default).
// Decoding follows Go too: keys match case-insensitively (the last match
// wins), unknown keys (BackendV6Data, ...) are ignored. It is stricter than Go
// where Go would silently produce garbage: a lease without a valid PublicIP,
// or a vxlan lease without a VNI and VtepMAC, is refused with a message that
// says what is wrong, so the caller can skip it with a warning naming the key.
import { isIPv6 } from 'node:net';

import type { LeaseAttrs } from './types';

/** The BackendData of a vxlan lease (flannel's vxlanLeaseAttrs). */
export interface VxlanBackendData {
  VNI: number;
  /** Lowercase, colon separated. */
  VtepMAC: string;
}

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;
const MAX_VNI = 0xffffff;

export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  const checked = checkAttrs(attrs);
  let out = `{"PublicIP":${goString(checked.PublicIP)},"PublicIPv6":${checked.PublicIPv6 === null ? 'null' : goString(checked.PublicIPv6)}`;
  if (checked.BackendType !== undefined && checked.BackendType !== '') out += `,"BackendType":${goString(checked.BackendType)}`;
  if (checked.BackendData !== undefined && checked.BackendData !== null) out += `,"BackendData":${goJson(checked.BackendData)}`;
  return `${out}}`;
}

/** Parses a lease value; throws an Error naming what is wrong. */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`lease value is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new Error(`lease value is not a JSON object: ${truncate(text)}`);
  const fields = foldKeys(raw, ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData']);
  const attrs: LeaseAttrs = {
    PublicIP: fields.PublicIP as string,
    PublicIPv6: (fields.PublicIPv6 ?? null) as string | null,
  };
  if (fields.BackendType !== undefined && fields.BackendType !== null) attrs.BackendType = fields.BackendType as string;
  if (fields.BackendData !== undefined && fields.BackendData !== null) attrs.BackendData = fields.BackendData;
  return checkAttrs(attrs);
}

/** The vxlan BackendData of a lease, or null if the lease is not a vxlan lease. */
export function vxlanBackendData(attrs: LeaseAttrs): VxlanBackendData | null {
  return attrs.BackendType === 'vxlan' ? checkVxlanData(attrs.BackendData) : null;
}

/** Validates and normalizes (IPv4-mapped PublicIP, vxlan data key case/order, MAC case). */
function checkAttrs(attrs: LeaseAttrs): LeaseAttrs {
  const out: LeaseAttrs = { PublicIP: checkIp4(attrs.PublicIP), PublicIPv6: checkIp6(attrs.PublicIPv6) };
  if (attrs.BackendType !== undefined) {
    if (typeof attrs.BackendType !== 'string') throw new Error(`lease BackendType must be a string, got ${describe(attrs.BackendType)}`);
    out.BackendType = attrs.BackendType;
  }
  if (attrs.BackendType === 'vxlan') {
    out.BackendData = checkVxlanData(attrs.BackendData);
  } else if (attrs.BackendData !== undefined) {
    out.BackendData = attrs.BackendData;
  }
  return out;
}

function checkIp4(v: unknown): string {
  if (v === undefined || v === null) throw new Error('lease has no PublicIP');
  if (typeof v !== 'string') throw new Error(`lease PublicIP must be a string, got ${describe(v)}`);
  // Go's ip.IP4 goes through net.ParseIP(...).To4(), which takes ::ffff:a.b.c.d too.
  const text = v.toLowerCase().startsWith('::ffff:') ? v.slice(7) : v;
  if (!IPV4.test(text)) throw new Error(`lease PublicIP ${JSON.stringify(v)} is not an IPv4 address`);
  return text;
}

function checkIp6(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !isIPv6(v)) throw new Error(`lease PublicIPv6 ${describe(v)} is not an IPv6 address`);
  return v;
}

function checkVxlanData(v: unknown): VxlanBackendData {
  if (!isObject(v)) throw new Error(`vxlan lease BackendData must be an object with VNI and VtepMAC, got ${describe(v)}`);
  const f = foldKeys(v, ['VNI', 'VtepMAC']);
  if (typeof f.VNI !== 'number' || !Number.isInteger(f.VNI) || f.VNI < 0 || f.VNI > MAX_VNI) {
    throw new Error(`vxlan lease BackendData.VNI must be an integer 0..${MAX_VNI}, got ${describe(f.VNI)}`);
  }
  if (typeof f.VtepMAC !== 'string' || !MAC.test(f.VtepMAC)) {
    throw new Error(`vxlan lease BackendData.VtepMAC must be a MAC address, got ${describe(f.VtepMAC)}`);
  }
  return { VNI: f.VNI, VtepMAC: f.VtepMAC.toLowerCase().replace(/-/g, ':') };
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

function describe(v: unknown): string {
  return v === undefined ? 'nothing' : truncate(JSON.stringify(v));
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function goString(s: string): string {
  return htmlEscape(JSON.stringify(s));
}

/** JSON.stringify keeps insertion order and writes compact JSON, as Go's RawMessage marshalling does. */
function goJson(v: unknown): string {
  return htmlEscape(JSON.stringify(v));
}

function htmlEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
