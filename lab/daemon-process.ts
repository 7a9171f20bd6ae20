// Runs the weft daemon on a lab node, as a node's service manager would:
// its own subnet file, status socket and log, in the node's namespace.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { type DaemonStatus, readStatus } from '../src/daemon/status';
import type { SubnetEnv } from '../src/subnet/env';
import { SERVICE_ACCOUNT_DIR } from '../src/defaults';
import { readSubnetEnv } from '../src/subnet/env';
import { CLI } from './engine-process';
import { until } from './wait';
import type { LabNode } from './topology';

export interface DaemonOptions {
  node: LabNode;
  /** The node's own directory: subnet.env, weft.sock and daemon.log go here. */
  dir: string;
  /** Flags after the lab's own (--iface, --subnet-file). */
  args: string[];
  /** --iface; default eth0, the node's underlay. */
  iface?: string;
  env?: NodeJS.ProcessEnv;
  /** Leave it running after this process exits (the demo's --keep). */
  detached?: boolean;
  /** Start it under this umask (e.g. 0o000, to check that modes are set explicitly). */
  umask?: number;
  /**
   * A directory bind-mounted over /var/run/secrets/kubernetes.io/serviceaccount
   * for the daemon alone (a mount namespace of its own), as a pod's service
   * account is mounted. The mount point must exist.
   */
  serviceAccount?: string;
}

/**
 * Every daemon this process started and that still runs. A test that fails
 * before it stops its daemons must neither hang (a running child keeps the
 * test file's process alive) nor leave them running: children are unref'd
 * (but while someone awaits their exit), and whatever is left when the
 * process has nothing else to do is killed.
 */
const live = new Set<ChildProcess>();
let reaperInstalled = false;
function reapLeftovers(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

export class DaemonProcess {
  private readonly exit: Promise<number | null>;

  private constructor(
    readonly opts: DaemonOptions,
    readonly child: ChildProcess,
  ) {
    this.exit = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
    });
  }

  /** The exit code (128 for a signal). Awaiting it keeps this process alive until the daemon exits. */
  get exited(): Promise<number | null> {
    this.child.ref();
    return this.exit;
  }

  get subnetFile(): string {
    return path.join(this.opts.dir, 'subnet.env');
  }
  get socket(): string {
    return path.join(this.opts.dir, 'weft.sock');
  }
  get logFile(): string {
    return path.join(this.opts.dir, 'daemon.log');
  }

  static spawn(o: DaemonOptions): DaemonProcess {
    fs.mkdirSync(o.dir, { recursive: true });
    const log = fs.openSync(path.join(o.dir, 'daemon.log'), 'a');
    const args = [CLI, '--iface', o.iface ?? 'eth0', '--subnet-file', path.join(o.dir, 'subnet.env'), ...o.args];
    let [cmd, argv] =
      o.umask === undefined
        ? [process.execPath, args]
        : ['sh', ['-c', `umask ${o.umask.toString(8).padStart(3, '0')} && exec "$0" "$@"`, process.execPath, ...args]];
    if (o.serviceAccount) {
      [cmd, argv] = ['unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount --bind "$0" ${SERVICE_ACCOUNT_DIR} && exec "$@"`, o.serviceAccount, cmd, ...argv]];
    }
    const child = o.node.ns.spawn(cmd, argv, {
      stdio: ['ignore', log, log],
      env: { ...process.env, ...o.env },
      detached: o.detached ?? false,
    });
    fs.closeSync(log);
    child.unref();
    if (!o.detached) {
      live.add(child);
      child.once('exit', () => live.delete(child));
      if (!reaperInstalled) {
        reaperInstalled = true;
        process.once('beforeExit', reapLeftovers);
        process.once('exit', reapLeftovers);
      }
    }
    return new DaemonProcess(o, child);
  }

  /** Spawns and waits until the daemon says it is ready; rejects with its log if it exits first. */
  static async start(o: DaemonOptions, timeoutMs = 20_000): Promise<DaemonProcess> {
    const d = DaemonProcess.spawn(o);
    await d.waitReady(timeoutMs);
    return d;
  }

  logs(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async waitReady(timeoutMs = 20_000): Promise<DaemonStatus> {
    const where = this.opts.node.ns.name;
    return until(`weft daemon on ${where} ready`, timeoutMs, async () => {
      const s = await readStatus(this.socket, 1000);
      return s.ready ? s : undefined;
    }, {
      fatal: () =>
        this.child.exitCode !== null || this.child.signalCode !== null
          ? new Error(`weft daemon on ${where} exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.logs()}`)
          : undefined,
      detail: () => this.logs(),
    });
  }


  /** Waits until every daemon has the others as peers (a watch delivers them, not at once). */
  static async converged(daemons: DaemonProcess[], timeoutMs = 5000): Promise<void> {
    await until(`${daemons.length} daemons see each other`, timeoutMs, async () =>
      (await Promise.all(daemons.map((d) => d.status()))).every((s) => s.peers.length >= daemons.length - 1),
    );
  }

  status(): Promise<DaemonStatus> {
    return readStatus(this.socket);
  }

  subnetEnv(): Partial<SubnetEnv> {
    const read = readSubnetEnv(this.subnetFile);
    if (!read) throw new Error(`${this.subnetFile} is missing`);
    return read.env;
  }

  /** SIGTERM and wait (SIGKILL after timeoutMs); the exit code. */
  async stop(timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}
