import { randomBytes } from 'node:crypto';

/** A MAC as leases carry it: six hex pairs, colon-separated (either case). */
export function isMac(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s);
}

/** A random VtepMAC: unicast (bit 0 clear), locally administered (bit 1 set). */
export function randomVtepMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
