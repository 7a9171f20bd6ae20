// `weft status`: the running daemon answers one JSON document on a unix
// socket (--status-socket, by default beside the subnet file) and closes.
//
// The socket is the daemon's only local control surface, so: it is mode
// 0600 (root) or 0660 with --status-socket-group, set explicitly whatever
// the umask; a client that connects and goes away, or never reads, costs one
// short-lived socket and never an error out of the process; a socket file
// that another live daemon answers on is refused (two daemons on one node),
// a stale one from a killed daemon is replaced, anything else at the path is
// an error naming it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import type { BackendType } from '../config/netconf';
import { ensureDir } from '../fsutil';
import type { Logger } from '../log';
import type { CounterName, CounterValue } from '../native';
import type { PeerState } from '../backend';

export interface DaemonStatus {
  pid: number;
  backend: BackendType;
  network: string;
  subnet: string;
  publicIp: string;
  vtepMac: string | null;
  /** The overlay device (flannel0, flannel.<VNI>); null for host-gw. */
  tun: string | null;
  mtu: number;
  leaseExpiration: string | null;
  /** Where leases live: "etcd ...", "embedded store ...", "kube API ...". */
  store: string;
  ready: boolean;
  /** What the forwarding state holds, read back from the engine or the kernel. */
  peers: PeerState[];
  /** The engine's counters; null for a backend without the engine (host-gw). */
  counters: Record<CounterName, CounterValue> | null;
}

/** The socket `weft status` reads: --status-socket, else weft.sock beside the subnet file. */
export function statusSocketPath(subnetFile: string, statusSocket: string): string {
  return statusSocket || path.join(path.dirname(subnetFile), 'weft.sock');
}

const MAX_CLIENTS = 16;
const CLIENT_TIMEOUT_MS = 2_000;

/** gid of a group name or number, from /etc/group (node has no getgrnam). */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new Error(`--status-socket-group: no group named "${group}" in /etc/group`);
}

/** Resolves true when something answers a connect on `file` within a second. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(file);
    const done = (v: boolean): void => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(1000, () => done(true)); // accepted but silent: still somebody's
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export async function serveStatus(file: string, group: string, status: () => DaemonStatus, log: Logger): Promise<net.Server> {
  const gid = group ? groupId(group) : null;
  ensureDir(path.dirname(file));
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(file);
  } catch {
    // nothing there
  }
  if (st) {
    if (!st.isSocket()) throw new Error(`status socket ${file} exists and is not a socket; remove it or pass another --status-socket`);
    if (await answers(file)) throw new Error(`another weft daemon answers on the status socket ${file}; stop it first, or give this one its own --status-socket and --subnet-file`);
    fs.rmSync(file, { force: true }); // a stale socket from a killed daemon
  }
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined); // a client that went away is not our problem
    sock.setTimeout(CLIENT_TIMEOUT_MS, () => sock.destroy());
    let body: string;
    try {
      body = `${JSON.stringify(status())}\n`;
    } catch (err) {
      body = `${JSON.stringify({ error: (err as Error).message })}\n`;
    }
    sock.end(body);
  });
  server.maxConnections = MAX_CLIENTS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen on the status socket ${file}: ${err.message}`)));
    server.listen(file, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => log.error({ err: err.message }, `status socket: ${err.message}`));
  // Modes after listen: bind() created the file under the umask.
  if (gid !== null) {
    fs.chownSync(file, 0, gid);
    fs.chmodSync(file, 0o660);
  } else {
    fs.chmodSync(file, 0o600);
  }
  return server;
}

/** Closes the server and removes its socket file, if it is still a socket. */
export function closeStatus(server: net.Server, file: string): void {
  server.close();
  try {
    if (fs.lstatSync(file).isSocket()) fs.rmSync(file);
  } catch {
    // already gone, or replaced by something that is not ours
  }
}

export function readStatus(socketPath: string, timeoutMs = 5000): Promise<DaemonStatus> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const sock = net.connect(socketPath);
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`no answer from ${socketPath} in ${timeoutMs} ms`)));
    sock.on('data', (d) => (buf += d.toString()));
    sock.on('end', () => {
      try {
        resolve(JSON.parse(buf) as DaemonStatus);
      } catch {
        reject(new Error(`garbled status from ${socketPath}`));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EACCES' || err.code === 'EPERM') {
        reject(new Error(`permission denied on the status socket ${socketPath}: only root (or --status-socket-group) may read it`));
      } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new Error(`no weft daemon answers on ${socketPath} (${err.code}); is it running? (--status-socket, --subnet-file)`));
      } else {
        reject(new Error(`cannot read the status socket ${socketPath}: ${err.message}`));
      }
    });
  });
}
