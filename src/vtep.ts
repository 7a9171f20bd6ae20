// VtepMACs: the one MAC rule of the control layer. Leases may write a MAC as
// Go's net.ParseMAC takes it (aa:bb:.., aa-bb-.., aabb.ccdd.eeff); weft
// keeps it as lowercase colon-separated text, the form flannel publishes and
// the engine takes.
import { randomBytes } from 'node:crypto';

const COLON_OR_HYPHEN = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;
const DOTTED = /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i;

/** A 6-byte MAC in any of Go's forms, as lowercase "aa:bb:cc:dd:ee:ff"; null if it is not one. */
export function parseMac(text: string): string | null {
  let hex: string;
  if (COLON_OR_HYPHEN.test(text)) hex = text.replace(/[:-]/g, '');
  else if (DOTTED.test(text)) hex = text.replace(/\./g, '');
  else return null;
  return hex.toLowerCase().match(/../g)!.join(':');
}

/** Unicast: the group bit (bit 0 of the first byte) is clear; not all zero. */
export function isUnicastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 && mac !== '00:00:00:00:00:00';
}

/** A random VtepMAC: unicast (bit 0 clear), locally administered (bit 1 set). */
export function randomVtepMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
