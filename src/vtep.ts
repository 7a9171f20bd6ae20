import { randomBytes } from 'node:crypto';

/** A random VtepMAC: unicast (bit 0 clear), locally administered (bit 1 set). */
export function randomVtepMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
