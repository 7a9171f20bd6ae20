// One weft per node. A node is a network namespace (the lab runs one per
// namespace; a DaemonSet pod with hostNetwork runs in the host's), so the
// lock is an abstract unix socket: its name lives in the namespace, the
// kernel frees it when the process dies however it dies (no stale lock
// file), and a second daemon that finds it taken can ask the holder who it
// is. Taken before anything touches routes, sockets, leases or files.
import * as net from 'node:net';

const NAME = '\0weft-node-lock';

export interface Holder {
  pid: number;
  subnetFile: string;
}

/** Takes the node's lock; throws naming the daemon that holds it. The server stays open until release. */
export async function lockNode(me: Holder): Promise<net.Server> {
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.setTimeout(1000, () => sock.destroy());
    sock.end(`${JSON.stringify(me)}\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(NAME, () => resolve());
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const other = await whoHolds();
    throw new Error(
      `another weft daemon already runs on this node (network namespace)${other ? `: pid ${other.pid}, subnet file ${other.subnetFile}` : ''}; ` +
        'one node runs one weft (stop it first)',
    );
  }
  server.removeAllListeners('error');
  server.on('error', () => undefined);
  server.unref();
  return server;
}

function whoHolds(): Promise<Holder | null> {
  return new Promise((resolve) => {
    let buf = '';
    const sock = net.connect(NAME);
    sock.setTimeout(1000, () => sock.destroy());
    sock.on('data', (d) => (buf += d.toString()));
    sock.on('close', () => {
      try {
        resolve(JSON.parse(buf) as Holder);
      } catch {
        resolve(null);
      }
    });
    sock.on('error', () => undefined);
  });
}
