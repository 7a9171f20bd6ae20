// Sends hand-built IPv4 packets (lab/packets.ts) from a namespace through a
// raw socket, for tests that need what no socket API sends: a datagram
// with someone else's source address, an ICMP error about a datagram that
// was never sent. Node has no raw sockets; python3 is on every machine
// that builds the addon (node-gyp needs it), and it only writes the bytes.
import type { Netns } from './netns';

const SEND = [
  'import socket, sys, time',
  's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)',
  's.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)',
  'for h in sys.argv[1:]:',
  '    b = bytes.fromhex(h)',
  '    s.sendto(b, (socket.inet_ntoa(b[16:20]), 0))',
  '    time.sleep(0.01)',
].join('\n');

/** Sends each packet once, in order, 10 ms apart, to the address in its own IPv4 header. */
export function sendRawIpv4(ns: Netns, packets: Uint8Array[]): void {
  ns.exec('python3', ['-c', SEND, ...packets.map((p) => Buffer.from(p).toString('hex'))]);
}
