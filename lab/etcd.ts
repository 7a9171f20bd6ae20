// A real etcd server (Debian's etcd-server, 3.4) for the tests and the lab:
// one member, its own ports and data dir, on 127.0.0.1 or inside a lab
// namespace. Started processes are tracked and SIGKILLed if this process
// exits without stopping them, so a failed test leaves no etcd behind.
// The etcdctl helpers drive the server the way an operator (or a flannel
// node) would, from outside weft's client.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import type { Netns } from './netns';
import { until } from './wait';

export interface EtcdOptions {
  /** Run inside this namespace (ip netns exec); listenIp must be one of its addresses. */
  ns?: Netns;
  listenIp?: string;
  clientPort: number;
  peerPort: number;
  /** Created if missing; etcd keeps its state in <dataDir>/data (etcd's --data-dir) and logs to <dataDir>/etcd.log. */
  dataDir: string;
  name?: string;
  /** etcd's --auto-compaction-mode/--auto-compaction-retention; off unless given. */
  autoCompaction?: { mode: 'periodic' | 'revision'; retention: string };
  /** How long to wait for the server to report healthy. Default 20 s. */
  startTimeoutMs?: number;
}

export interface EtcdServer {
  /** http://ip:clientPort */
  readonly endpoint: string;
  readonly logFile: string;
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill9(): Promise<void>;
  /** Stops it if running, then starts it again on the same data dir and waits until healthy. */
  restart(): Promise<void>;
  /** Removes etcd's state (<dataDir>/data), so the next restart is a fresh cluster. Only while stopped. */
  wipe(): void;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export async function startEtcd(opts: EtcdOptions): Promise<EtcdServer> {
  const ip = opts.listenIp ?? '127.0.0.1';
  const name = opts.name ?? 'weft-lab';
  const clientUrl = `http://${ip}:${opts.clientPort}`;
  const peerUrl = `http://${ip}:${opts.peerPort}`;
  const logFile = path.join(opts.dataDir, 'etcd.log');
  // A directory of etcd's own: it warns about any other file in its data dir.
  const etcdDir = path.join(opts.dataDir, 'data');
  const args = [
    '--name', name,
    '--data-dir', etcdDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', `weft-lab-${process.pid}`,
    '--auto-compaction-retention', opts.autoCompaction?.retention ?? '0',
    '--auto-compaction-mode', opts.autoCompaction?.mode ?? 'periodic',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
  ];
  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    fs.mkdirSync(etcdDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(etcdDir, 0o700);
    const log = fs.openSync(logFile, 'a');
    // The parent's ETCD_* variables would override the flags.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
    const spawnOpts = { stdio: ['ignore', log, log] as ('ignore' | number)[], env };
    const c = opts.ns ? opts.ns.spawn('etcd', args, spawnOpts) : spawn('etcd', args, spawnOpts);
    fs.closeSync(log);
    child = c;
    running.add(c);
    installExitHook();
    let exitInfo: string | null = null;
    exited = new Promise<void>((resolve) => {
      c.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        running.delete(c);
        resolve();
      });
      c.once('error', (err) => {
        exitInfo = err.message;
        running.delete(c);
        resolve();
      });
    });
    try {
      await until(`etcd at ${clientUrl} healthy`, timeoutMs, async () => healthy(clientUrl, peerUrl, opts.ns), {
        fatal: () => (exitInfo !== null ? new Error(`etcd exited during start-up (${exitInfo}); log ${logFile}:\n${tail(logFile)}`) : undefined),
        detail: () => `log ${logFile}:\n${tail(logFile)}`,
      });
    } catch (err) {
      if (exitInfo === null) await stopChild('SIGKILL');
      throw err;
    }
  };

  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    endpoint: clientUrl,
    logFile,
    get pid() {
      return (child as ChildProcess | null)?.pid;
    },
    stop: () => stopChild('SIGTERM'),
    kill9: () => stopChild('SIGKILL'),
    restart: async () => {
      await stopChild('SIGTERM');
      await launch();
    },
    wipe: () => {
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null && c.signalCode === null) throw new Error('etcd is running: stop it before wiping its data');
      fs.rmSync(etcdDir, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on host (127.0.0.1 by default) right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

// --- etcdctl, the operator's tool ------------------------------------------

export interface EtcdctlOptions {
  ns?: Netns;
  timeoutMs?: number;
}

/** Runs `ETCDCTL_API=3 etcdctl --endpoints=<endpoint> ...args`; resolves to stdout. */
export function etcdctl(endpoint: string, args: string[], opts: EtcdctlOptions = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const full = [`--endpoints=${endpoint}`, `--command-timeout=${Math.max(1, Math.floor(timeoutMs / 1000) - 1)}s`, ...args];
  const [cmd, argv] = opts.ns ? ['ip', ['netns', 'exec', opts.ns.name, 'etcdctl', ...full]] : ['etcdctl', full];
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD'))), ETCDCTL_API: '3' };
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`etcdctl ${args.join(' ')} failed: ${(stderr || stdout || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

/** Grants an etcd lease; resolves to its id in hex, as etcdctl prints it. */
export async function etcdctlLeaseGrant(endpoint: string, ttlSeconds: number, opts?: EtcdctlOptions): Promise<string> {
  const out = await etcdctl(endpoint, ['lease', 'grant', String(ttlSeconds)], opts);
  const m = /lease ([0-9a-f]+) granted/.exec(out);
  if (!m) throw new Error(`etcdctl lease grant: unexpected output ${JSON.stringify(out)}`);
  return m[1];
}

/** `etcdctl put [--lease=<hex>] key value`: the value is written byte for byte. */
export async function etcdctlPut(endpoint: string, key: string, value: string, opts: EtcdctlOptions & { lease?: string } = {}): Promise<void> {
  await etcdctl(endpoint, ['put', ...(opts.lease ? [`--lease=${opts.lease}`] : []), '--', key, value], opts);
}

/** The raw bytes of a key (null if absent), its etcd lease id (decimal string, '0' for none) and revisions. */
export async function etcdctlGet(
  endpoint: string,
  key: string,
  opts?: EtcdctlOptions,
): Promise<{ value: Buffer; lease: string; modRevision: number } | null> {
  const text = await etcdctl(endpoint, ['get', '-w', 'json', '--', key], opts);
  const out = JSON.parse(text) as { kvs?: { value: string; mod_revision: number }[] };
  const kv = out.kvs?.[0];
  if (!kv) return null;
  // Lease ids are 64-bit: read them from the text, JSON.parse would round them.
  const lease = /"lease":(\d+)/.exec(text)?.[1] ?? '0';
  return { value: Buffer.from(kv.value, 'base64'), lease, modRevision: kv.mod_revision };
}

/** Deletes a key; resolves to the number of keys deleted. */
export async function etcdctlDel(endpoint: string, key: string, opts?: EtcdctlOptions): Promise<number> {
  return Number((await etcdctl(endpoint, ['del', '--', key], opts)).trim());
}

/** The store's current revision. */
export async function etcdctlRevision(endpoint: string, opts?: EtcdctlOptions): Promise<number> {
  const out = JSON.parse(await etcdctl(endpoint, ['get', '-w', 'json', '--', '/weft-lab-no-such-key'], opts)) as { header: { revision: number } };
  return out.header.revision;
}

/** Compacts the history up to revision (the current one if omitted); resolves to it. */
export async function etcdctlCompact(endpoint: string, revision?: number, opts?: EtcdctlOptions): Promise<number> {
  const rev = revision ?? (await etcdctlRevision(endpoint, opts));
  await etcdctl(endpoint, ['compaction', '--physical', String(rev)], opts);
  return rev;
}

/** Healthy, and ours: another etcd already on the port would answer too. */
async function healthy(endpoint: string, peerUrl: string, ns?: Netns): Promise<boolean> {
  try {
    const members = JSON.parse(await etcdctl(endpoint, ['member', 'list', '-w', 'json'], { ns, timeoutMs: 3_000 })) as {
      members?: { peerURLs?: string[] }[];
    };
    if (!members.members?.some((m) => m.peerURLs?.includes(peerUrl))) return false;
    await etcdctl(endpoint, ['endpoint', 'health'], { ns, timeoutMs: 3_000 });
    return true;
  } catch {
    return false;
  }
}

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}


