// A TCP transfer whose bytes are checked end to end: the sender streams
// random data and hashes what it wrote, the receiver hashes what arrived.
//   node tcp-transfer.js serve PORT          -> prints {"bytes":N,"sha256":"..."} after one connection
//   node tcp-transfer.js send HOST PORT BYTES -> prints the same for what it sent
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';

function serve(port: number): void {
  const server = net.createServer((sock) => {
    const h = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    sock.on('end', () => {
      process.stdout.write(`${JSON.stringify({ bytes, sha256: h.digest('hex') })}\n`);
      sock.end();
      server.close();
    });
  });
  server.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'));
}

function send(host: string, port: number, total: number): void {
  const h = createHash('sha256');
  let sent = 0;
  const sock = net.connect(port, host);
  sock.setTimeout(30_000, () => sock.destroy(new Error('transfer timed out')));
  const pump = () => {
    while (sent < total) {
      const chunk = randomBytes(Math.min(64 * 1024, total - sent));
      h.update(chunk);
      sent += chunk.length;
      if (!sock.write(chunk)) return void sock.once('drain', pump);
    }
    sock.end();
  };
  sock.on('connect', pump);
  sock.on('close', (hadError) => {
    if (hadError) process.exit(1);
    process.stdout.write(`${JSON.stringify({ bytes: sent, sha256: h.digest('hex') })}\n`);
  });
  sock.on('error', (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve') serve(Number(a));
else if (mode === 'send') send(a, Number(b), Number(c));
else {
  process.stderr.write('usage: tcp-transfer serve PORT | send HOST PORT BYTES\n');
  process.exit(2);
}
