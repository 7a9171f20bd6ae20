// Sprays a weft port with bad datagrams, by category, from one address,
// and (category unknown_peer) good frames from a second, non-peer address.
//   node udp-flood.js JSON_OPTIONS
// options: {target, port, peerIp, strangerIp, vni, mac, innerSrc, innerDst,
//           perCategory?: number (exact mode, paced), seconds?: number (flood)}
// Prints one JSON line: {sent: {category: n}, total}.
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';

import { icmpEcho, ipv4, vxlanFrame } from './packets';

interface Options {
  target: string;
  port: number;
  peerIp: string;
  strangerIp: string;
  vni: number;
  mac: string;
  innerSrc: string;
  innerDst: string;
  perCategory?: number;
  seconds?: number;
}

const o = JSON.parse(process.argv[2]) as Options;
const OTHER_MAC = '02:de:ad:be:ef:01';
const inner = () => ipv4({ src: o.innerSrc, dst: o.innerDst, payload: icmpEcho(8, 0x7777, 1, randomBytes(32)) });
const frame = (x: Partial<Parameters<typeof vxlanFrame>[0]> = {}) => vxlanFrame({ vni: o.vni, dstMac: o.mac, srcMac: OTHER_MAC, inner: inner(), ...x });
const withInner = (mutate: (b: Buffer) => void) => {
  const b = inner();
  mutate(b);
  return frame({ inner: b });
};

// category -> [which socket, make a datagram]; the names are the drop
// reasons weft must count them under (random: any reason).
const CATEGORIES: Record<string, ['peer' | 'stranger', () => Buffer]> = {
  random: ['peer', () => randomBytes(Math.floor(Math.random() * 1400))],
  rx_drop_truncated: ['peer', () => frame().subarray(0, Math.floor(Math.random() * 22))],
  rx_drop_oversized: ['peer', () => frame({ inner: ipv4({ src: o.innerSrc, dst: o.innerDst, payload: randomBytes(1500) }) })],
  rx_drop_bad_vxlan_flags: ['peer', () => frame({ flags: 0x0c })],
  rx_drop_wrong_vni: ['peer', () => frame({ vni: o.vni + 1 })],
  rx_drop_wrong_mac: ['peer', () => frame({ dstMac: OTHER_MAC })],
  rx_drop_bad_ethertype: ['peer', () => frame({ ethertype: 0x86dd })],
  rx_drop_bad_ihl: ['peer', () => withInner((b) => (b[0] = 0x43))],
  rx_drop_bad_length: ['peer', () => withInner((b) => b.writeUInt16BE(b.length + 100, 2))],
  // Larger than the underlay MTU: IP-fragmented on the way, reassembled by
  // the node's kernel, then too big for the TUN.
  fragmented: ['peer', () => frame({ inner: ipv4({ src: o.innerSrc, dst: o.innerDst, payload: randomBytes(2900) }) })],
  rx_drop_unknown_peer: ['stranger', () => frame()],
};
const names = Object.keys(CATEGORIES);

async function main(): Promise<void> {
  const socks = {
    peer: dgram.createSocket('udp4'),
    stranger: dgram.createSocket('udp4'),
  };
  await Promise.all([
    new Promise<void>((r) => socks.peer.bind(0, o.peerIp, () => r())),
    new Promise<void>((r) => socks.stranger.bind(0, o.strangerIp, () => r())),
  ]);
  const sent: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  let inflight = 0;
  let total = 0;
  const send = (name: string) =>
    new Promise<void>((resolve) => {
      const [which, make] = CATEGORIES[name];
      inflight++;
      socks[which].send(make(), o.port, o.target, (err) => {
        inflight--;
        if (!err) {
          sent[name]++;
          total++;
        }
        resolve();
      });
    });

  if (o.perCategory) {
    // Exact mode: paced so nothing is lost on the way and every datagram
    // must show up in a counter.
    for (let i = 0; i < o.perCategory; i++) {
      await Promise.all(names.map(send));
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
    }
  } else {
    const until = Date.now() + (o.seconds ?? 10) * 1000;
    let i = 0;
    while (Date.now() < until) {
      while (inflight < 512) void send(names[i++ % names.length]);
      await new Promise((r) => setImmediate(r));
    }
    while (inflight > 0) await new Promise((r) => setImmediate(r));
  }
  socks.peer.close();
  socks.stranger.close();
  process.stdout.write(`${JSON.stringify({ sent, total })}\n`);
}

void main();
