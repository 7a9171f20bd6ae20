// A plain UDP socket standing in for a flannel udp peer: prints every
// datagram it receives as a JSON line, and sends hex datagrams it is given.
//   node udp-peer.js BIND_IP PORT
//   stdin:  {"send":"<hex>","to":"1.2.3.4","port":8285}
//   stdout: {"bound":true} then {"from":"1.2.3.4","port":8285,"hex":"..."}
import * as dgram from 'node:dgram';
import * as readline from 'node:readline';

const [bindIp, port] = process.argv.slice(2);
const sock = dgram.createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  process.stdout.write(`${JSON.stringify({ from: rinfo.address, port: rinfo.port, hex: msg.toString('hex') })}\n`);
});
sock.bind(Number(port), bindIp, () => process.stdout.write('{"bound":true}\n'));
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line) as { send: string; to: string; port: number };
  sock.send(Buffer.from(m.send, 'hex'), m.port, m.to);
});
// Bounded: the test kills it, and it never outlives a minute.
setTimeout(() => process.exit(0), 60_000).unref();
process.stdin.on('end', () => process.exit(0));
