// Packets built by hand for tests, with checksums computed here, apart from
// the native code under test.

export function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ip4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  ttl?: number;
  protocol?: number;
  payload?: Uint8Array;
  options?: Uint8Array; // multiple of 4 bytes
  id?: number;
}

export function ipv4(s: Ipv4Spec): Buffer {
  const opts = s.options ?? new Uint8Array(0);
  const payload = s.payload ?? new Uint8Array(0);
  const ihl = 20 + opts.length;
  const b = Buffer.alloc(ihl + payload.length);
  b[0] = 0x40 | (ihl / 4);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(s.id ?? 0x1234, 4);
  b[6] = 0x40; // DF
  b[8] = s.ttl ?? 64;
  b[9] = s.protocol ?? 1;
  b.set(ip4Bytes(s.src), 12);
  b.set(ip4Bytes(s.dst), 16);
  b.set(opts, 20);
  b.writeUInt16BE(checksum(b.subarray(0, ihl)), 10);
  b.set(payload, ihl);
  return b;
}

export function icmpEcho(type: 8 | 0, id: number, seq: number, data: Uint8Array = new Uint8Array(16)): Buffer {
  const b = Buffer.alloc(8 + data.length);
  b[0] = type;
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  b.set(data, 8);
  b.writeUInt16BE(checksum(b), 2);
  return b;
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

export function vxlanFrame(o: { vni: number; dstMac: string; srcMac: string; inner: Uint8Array; ethertype?: number; flags?: number }): Buffer {
  const b = Buffer.alloc(8 + 14 + o.inner.length);
  b[0] = o.flags ?? 0x08;
  b.writeUIntBE(o.vni, 4, 3);
  macBytes(o.dstMac).copy(b, 8);
  macBytes(o.srcMac).copy(b, 14);
  b.writeUInt16BE(o.ethertype ?? 0x0800, 20);
  b.set(o.inner, 22);
  return b;
}

function pseudoHeaderSum(ip: Buffer, proto: number, l4Len: number): number {
  let sum = 0;
  for (let i = 12; i < 20; i += 2) sum += ip.readUInt16BE(i);
  return sum + proto + l4Len;
}

/** TCP/UDP checksum of an IPv4 packet, computed here from scratch; 0 when the packet's field is right. */
export function l4ChecksumResidue(pkt: Buffer): number {
  const ihl = (pkt[0] & 0xf) * 4;
  const total = pkt.readUInt16BE(2);
  const l4 = pkt.subarray(ihl, total);
  let sum = pseudoHeaderSum(pkt, pkt[9], l4.length);
  for (let i = 0; i + 1 < l4.length; i += 2) sum += l4.readUInt16BE(i);
  if (l4.length % 2) sum += l4[l4.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Tcp4Spec {
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  seq: number;
  ack?: number;
  flags?: number; // default ACK
  window?: number;
  options?: Uint8Array; // multiple of 4
  ipOptions?: Uint8Array;
  payload: Uint8Array;
  id?: number;
  ttl?: number;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, CWR: 0x80 } as const;

/** An IPv4 TCP packet with correct IP and TCP checksums. */
export function tcp4(s: Tcp4Spec): Buffer {
  const opts = s.options ?? new Uint8Array(0);
  const th = Buffer.alloc(20 + opts.length);
  th.writeUInt16BE(s.sport ?? 40000, 0);
  th.writeUInt16BE(s.dport ?? 5201, 2);
  th.writeUInt32BE(s.seq >>> 0, 4);
  th.writeUInt32BE((s.ack ?? 1000) >>> 0, 8);
  th[12] = (th.length / 4) << 4;
  th[13] = s.flags ?? TCP.ACK;
  th.writeUInt16BE(s.window ?? 512, 14);
  th.set(opts, 20);
  const pkt = ipv4({ src: s.src ?? '10.244.1.2', dst: s.dst ?? '10.244.2.2', protocol: 6, ttl: s.ttl, id: s.id, options: s.ipOptions, payload: Buffer.concat([th, s.payload]) });
  const ihl = (pkt[0] & 0xf) * 4;
  pkt.writeUInt16BE(0, ihl + 16);
  pkt.writeUInt16BE(l4ChecksumResidue(pkt), ihl + 16);
  return pkt;
}

/** An IPv4 UDP packet with correct checksums. */
export function udp4(s: { src?: string; dst?: string; sport?: number; dport?: number; payload: Uint8Array }): Buffer {
  const uh = Buffer.alloc(8);
  uh.writeUInt16BE(s.sport ?? 4000, 0);
  uh.writeUInt16BE(s.dport ?? 5000, 2);
  uh.writeUInt16BE(8 + s.payload.length, 4);
  const pkt = ipv4({ src: s.src ?? '10.244.1.2', dst: s.dst ?? '10.244.2.2', protocol: 17, payload: Buffer.concat([uh, s.payload]) });
  const c = l4ChecksumResidue(pkt);
  pkt.writeUInt16BE(c === 0 ? 0xffff : c, 26);
  return pkt;
}

/**
 * ICMP "fragmentation needed" (type 3, code 4) announcing nextHopMtu, quoting
 * the start of a datagram as a router would: its IPv4 header and at least
 * 8 bytes after it.
 */
export function icmpFragNeeded(nextHopMtu: number, quoted: Uint8Array): Buffer {
  const b = Buffer.alloc(8 + quoted.length);
  b[0] = 3;
  b[1] = 4;
  b.writeUInt16BE(nextHopMtu, 6);
  b.set(quoted, 8);
  b.writeUInt16BE(checksum(b), 2);
  return b;
}
