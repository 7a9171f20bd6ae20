// IPv4 addresses and CIDRs, parsed once and then handled as 32-bit numbers
// (subnet arithmetic is all masks and additions). CIDR text goes through
// ip-address; a bare address, parsed thousands of times when a large
// cluster's leases arrive, through a strict dotted-quad pattern.
import { Address4 } from 'ip-address';

export interface Cidr4 {
  /** Network address, host bits cleared (as flannel's ParseCIDR does). */
  ip: number;
  prefixLen: number;
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** A dotted quad ("10.0.0.1": no leading zeros, no short forms) as a host-order number. */
export function parseIp4(text: string): number {
  const m = DOTTED_QUAD.exec(text);
  if (!m) throw new Error(`invalid IPv4 address format: ${text}`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIp4(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export function parseCidr4(text: string): Cidr4 {
  if (!/^[0-9.]+\/\d{1,2}$/.test(text) || !Address4.isValid(text)) {
    throw new Error(`invalid CIDR address: ${text}`);
  }
  const a = new Address4(text);
  return { ip: Number(a.startAddress().bigInt()), prefixLen: a.subnetMask };
}

export function formatCidr4(c: Cidr4): string {
  return `${formatIp4(c.ip)}/${c.prefixLen}`;
}

export function cidrContains(outer: Cidr4, ip: number): boolean {
  return ((ip & maskOf(outer.prefixLen)) >>> 0) === outer.ip;
}
