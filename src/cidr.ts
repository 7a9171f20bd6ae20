// IPv4 addresses and CIDRs, parsed once through ip-address and then handled
// as 32-bit numbers (subnet arithmetic is all masks and additions).
import { Address4 } from 'ip-address';

export interface Cidr4 {
  /** Network address, host bits cleared (as flannel's ParseCIDR does). */
  ip: number;
  prefixLen: number;
}

export function parseIp4(text: string): number {
  if (!Address4.isValid(text) || text.includes('/')) throw new Error(`invalid IPv4 address format: ${text}`);
  return Number(new Address4(text).bigInt());
}

export function formatIp4(ip: number): string {
  return Address4.fromBigInt(BigInt(ip >>> 0)).correctForm();
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
