// Runs weft's traffic manager (src/netfilter) inside a lab namespace, in a
// process of its own, so that iptables and nft act on that namespace: the
// calls the daemon makes, in its order, from a JSON plan.
//   node netfilter-process.js '<plan json>'
//   stdout: {"ready":true} once the rules are in, or {"error":"..."} (exit 1)
//   stderr: the manager's log (pino JSON lines)
// With resyncSeconds it stays up, resyncing, until SIGTERM; without, it exits
// once the rules are in (flannel leaves its rules behind when it stops).
import type { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';

import { parseCidr4 } from '../src/cidr';
import { createLogger } from '../src/log';
import { createTrafficManager } from '../src/netfilter/manager';
import type { Netns } from './netns';

export interface NetfilterPlan {
  nftables: boolean;
  network: string;
  subnet: string;
  prevNetwork?: string;
  prevSubnet?: string;
  masq: boolean;
  forward: boolean;
  fullyRandom: boolean;
  resyncSeconds?: number;
}

export interface NetfilterRun {
  code: number | null;
  error?: string;
  /** The manager's log messages, in order. */
  messages: string[];
}

export class NetfilterProcess {
  private err = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Starts the plan in ns; with `path`, the process's PATH is only that (for missing-binary checks). */
  static spawn(ns: Netns, plan: NetfilterPlan, path?: string): NetfilterProcess {
    const args = [__filename, JSON.stringify(plan)];
    return new NetfilterProcess(path === undefined ? ns.spawn(process.execPath, args) : ns.spawn('env', [`PATH=${path}`, process.execPath, ...args]));
  }

  /** Runs a plan without resync to its end. */
  static async run(ns: Netns, plan: NetfilterPlan, path?: string): Promise<NetfilterRun> {
    const p = NetfilterProcess.spawn(ns, plan, path);
    const [line, code] = await Promise.all([p.firstLine(30_000), p.exited]);
    return { code, error: line?.error, messages: p.messages() };
  }

  /** Starts a resyncing plan and waits for it to be ready; rejects with its output if it fails. */
  static async start(ns: Netns, plan: NetfilterPlan): Promise<NetfilterProcess> {
    const p = NetfilterProcess.spawn(ns, plan);
    const line = await p.firstLine(30_000);
    if (!line?.ready) {
      p.child.kill('SIGKILL');
      throw new Error(`traffic manager in ${ns.name} did not start: ${line?.error ?? p.err}`);
    }
    return p;
  }

  messages(): string[] {
    return this.err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  private firstLine(timeoutMs: number): Promise<{ ready?: boolean; error?: string } | undefined> {
    const lines = readline.createInterface({ input: this.child.stdout! });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve(undefined);
      }, timeoutMs);
      const done = (v: { ready?: boolean; error?: string } | undefined): void => {
        clearTimeout(timer);
        lines.close();
        resolve(v);
      };
      lines.once('line', (l) => done(JSON.parse(l) as { ready?: boolean; error?: string }));
      this.child.once('close', () => done(undefined));
    });
  }
}

/** The daemon's sequence (flannel's main.go order). */
async function main(plan: NetfilterPlan): Promise<void> {
  const log = createLogger(1, 'weft-netfilter');
  const network = parseCidr4(plan.network);
  const tm = createTrafficManager({ nftables: plan.nftables, log });
  try {
    await tm.preflight({ network, masq: plan.masq, forward: plan.forward, fullyRandom: plan.fullyRandom });
    await tm.cleanupOther();
    await tm.init();
    if (plan.masq) {
      await tm.setupMasq({
        network,
        subnet: parseCidr4(plan.subnet),
        prevNetwork: plan.prevNetwork ? parseCidr4(plan.prevNetwork) : null,
        prevSubnet: plan.prevSubnet ? parseCidr4(plan.prevSubnet) : null,
        fullyRandom: plan.fullyRandom,
      });
    }
    if (plan.forward) await tm.setupForward(network);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write('{"ready":true}\n');
  if (!plan.resyncSeconds) return tm.close();
  tm.startResync(plan.resyncSeconds);
  // The resync timer is unref'd (it never holds a daemon up); this holds the
  // process until the test stops it, and never past two minutes.
  const hold = setTimeout(() => process.kill(process.pid, 'SIGTERM'), 120_000);
  process.once('SIGTERM', () => {
    clearTimeout(hold);
    void tm.close();
  });
}

if (require.main === module) void main(JSON.parse(process.argv[2]) as NetfilterPlan);
