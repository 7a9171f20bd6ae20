// Network namespaces for the demo and the netns tests: made with iproute2,
// named under one per-run prefix so a run removes exactly what it made.
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from 'node:child_process';

export function run(cmd: string, args: string[], timeoutMs = 30_000): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

/**
 * A short prefix unique to this process, for namespace names. It ends in
 * "-" so no other run's prefix (a longer pid) starts with it.
 */
export function runPrefix(tag: string): string {
  return `${tag}${process.pid.toString(36)}-`;
}

export class Netns {
  private constructor(readonly name: string) {}

  static create(name: string): Netns {
    run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** Where `ip netns` keeps it: what CNI_NETNS names. */
  get path(): string {
    return `/run/netns/${this.name}`;
  }

  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  exec(cmd: string, args: string[], timeoutMs = 30_000): string {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], timeoutMs);
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  }

  /** Writes a namespaced sysctl, e.g. sysctl('net/ipv4/ip_forward', '1'). */
  sysctl(path: string, value: string): void {
    this.exec('sh', ['-c', `echo ${value} > /proc/sys/${path}`]);
  }

  /**
   * Waits until dev is operationally up. The kernel activates a new link's
   * queue (and sets it UP) from its linkwatch work, up to a second later;
   * until then it drops what is sent.
   */
  waitOperUp(dev: string, timeoutMs = 5000): void {
    const deadline = Date.now() + timeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!/state UP/.test(this.ip('link', 'show', dev))) {
      if (Date.now() > deadline) throw new Error(`${dev} in ${this.name} not up after ${timeoutMs} ms`);
      Atomics.wait(pause, 0, 0, 50);
    }
  }

  delete(): void {
    try {
      run('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
  }
}

/** Removes every namespace whose name starts with prefix (leftovers of a crash). */
export function deleteNamespaces(prefix: string): void {
  const list = run('ip', ['netns', 'list']);
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(prefix)) run('ip', ['netns', 'del', name]);
  }
}
