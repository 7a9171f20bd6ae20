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
