// The control-plane phase (`npm run bench -- --only control`): what the
// peer table costs at cluster scale, from the engine up to etcd.
//
//   1. engine: a full push and one-peer deltas at 500, 5,000 and 20,000
//      peers (bench/control-engine.ts, in a lab node's namespace);
//   2. daemon: start-up to ready, and its memory, with 5,000 and 20,000
//      leases in a real etcd, written in flannel's layout, each with its
//      own etcd lease as flanneld writes them (bench/control-etcd.ts);
//   3. a lease put in etcd until the daemon's FIB holds it: the put's
//      start (on the etcd host) to the daemon's "peer ... via" log line,
//      which it writes after Engine.updatePeers returned. Both clocks are
//      this machine's; pino stamps lines in ms.
//
//   etcd 192.168.77.100 (control-etcd.js) --br0-- node1 (the daemon, or control-engine.js)
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';

import type { DaemonProcess } from '../lab/daemon-process';
import { EtcdLab } from '../lab/etcd-cluster';
import { runPrefix } from '../lab/netns';
import type { EnginePushResult } from './control-engine';
import { peakRssMiB, rssMiB } from './cpu';
import { execIn, track } from '../lab/procs';
import { sleepMs as sleep, until } from '../lab/wait';
import { type Summary, summarize } from './stats';

export const CONTROL_PREFIX = runPrefix('wc');

export interface DaemonStart {
  leases: number;
  /** Writing the leases into etcd (not part of any target). */
  fillSeconds: number;
  /** Spawn of `node dist/src/cli.js` to its status saying ready. */
  readyMs: number;
  /** Resident set at ready, and the peak up to then. */
  rssMiB: number;
  peakRssMiB: number;
  /** Peers the daemon's FIB held at ready (the leases, as a check). */
  peers: number;
}

export interface ControlResult {
  engine: EnginePushResult[];
  daemon: DaemonStart[];
  /** Lease put -> FIB entry, ms, with the daemon holding the first daemon size's leases. */
  leaseToFib: { leases: number; samplesMs: number[]; summary: Summary | null } | null;
  errors: string[];
  seconds: number;
}

export interface ControlOptions {
  engineSizes: number[];
  daemonSizes: number[];
  leaseToFibSamples: number;
  log: (line: string) => void;
}

export const DEFAULT_CONTROL_OPTIONS = { engineSizes: [500, 5000, 20000], daemonSizes: [5000, 20000], leaseToFibSamples: 15 };

/** The etcd writer on the etcd host, driven by JSON lines. */
class EtcdWriter {
  private pending: Array<(r: Record<string, unknown>) => void> = [];
  private constructor(readonly child: ChildProcess) {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (l) => this.pending.shift()?.(JSON.parse(l) as Record<string, unknown>));
  }
  static start(el: EtcdLab): EtcdWriter {
    const child = track(el.etcdHost.spawn(process.execPath, [require.resolve('./control-etcd'), el.endpoint]));
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
    return new EtcdWriter(child);
  }
  request(cmd: Record<string, unknown>, timeoutMs = 300_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`etcd writer: ${cmd.op} not answered in ${timeoutMs} ms`)), timeoutMs);
      this.pending.push((r) => {
        clearTimeout(t);
        if (r.ok) resolve(r);
        else reject(new Error(`etcd writer: ${String(r.error)}`));
      });
      this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  }
  stop(): void {
    this.child.stdin!.end();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

/** The time (epoch ms) of the daemon's log line saying subnet became a peer, once it is there. */
async function peerLoggedAt(d: DaemonProcess, subnet: string, timeoutMs: number): Promise<number> {
  const needle = `"msg":"peer ${subnet} via `;
  return until(`daemon logs ${subnet} as a peer`, timeoutMs, async () => {
    const line = d.logs().split('\n').find((l) => l.includes(needle));
    return line ? (JSON.parse(line) as { time: number }).time : undefined;
  }, 2);
}

export async function runControl(o: ControlOptions): Promise<ControlResult> {
  const t0 = Date.now();
  const errors: string[] = [];
  const result: ControlResult = { engine: [], daemon: [], leaseToFib: null, errors, seconds: 0 };
  const el = await EtcdLab.create(CONTROL_PREFIX, 1);
  const [node] = el.lab.nodes;
  try {
    // 1. The engine alone.
    o.log(`  engine: full push and one-peer deltas at ${o.engineSizes.join(', ')} peers`);
    const r = await execIn(node.ns, process.execPath, [require.resolve('./control-engine'), ...o.engineSizes.map(String)], 300_000);
    if (r.code !== 0) throw new Error(`control-engine exited ${r.code}: ${r.stderr.trim()}`);
    result.engine = JSON.parse(r.stdout) as EnginePushResult[];
    for (const e of result.engine) {
      o.log(`    ${e.peers} peers: full push ${e.fullPushMs.median.toFixed(2)} ms (${e.fullPushMs.min.toFixed(2)}–${e.fullPushMs.max.toFixed(2)}), ` +
        `one-peer delta ${e.deltaUs.median.toFixed(1)} µs (max ${e.deltaUs.max.toFixed(0)}), FIB holds ${e.held}`);
    }

    // 2 and 3. The daemon on etcd.
    await el.putConfig({ Network: '10.0.0.0/8', SubnetLen: 24, Backend: { Type: 'vxlan' } });
    const writer = EtcdWriter.start(el);
    try {
      let written = 0;
      for (const n of o.daemonSizes) {
        const fill = (await writer.request({ op: 'fill', from: written + 1, to: n })) as { seconds: number };
        written = n;
        o.log(`  daemon: ${n} leases in etcd (written in ${fill.seconds.toFixed(1)} s)`);
        const ts = process.hrtime.bigint();
        const d = el.daemon(node);
        track(d.child);
        try {
          const s = await d.waitReady(60_000);
          const readyMs = Number(process.hrtime.bigint() - ts) / 1e6;
          const pid = d.child.pid!;
          const start: DaemonStart = { leases: n, fillSeconds: fill.seconds, readyMs, rssMiB: rssMiB(pid), peakRssMiB: peakRssMiB(pid), peers: s.peers.length };
          result.daemon.push(start);
          o.log(`    ready in ${readyMs.toFixed(0)} ms, RSS ${start.rssMiB.toFixed(1)} MiB (peak ${start.peakRssMiB.toFixed(1)}), ${s.peers.length} peers in the FIB`);
          if (!result.leaseToFib) {
            await sleep(500); // let the start-up settle: the watch is open
            const samples: number[] = [];
            for (let k = 0; k < o.leaseToFibSamples; k++) {
              const put = (await writer.request({ op: 'put', index: 60_000 + k })) as { startMs: number; subnet: string };
              const at = await peerLoggedAt(d, put.subnet, 5000);
              samples.push(at - put.startMs);
              await sleep(50);
            }
            result.leaseToFib = { leases: n, samplesMs: samples, summary: summarize(samples) };
            const sm = result.leaseToFib.summary!;
            o.log(`    lease put -> FIB: median ${sm.median} ms (${sm.min}–${sm.max}) over ${samples.length} puts`);
          }
        } catch (err) {
          errors.push(`daemon with ${n} leases: ${(err as Error).message.split('\n')[0]}`);
          o.log(`    FAILED: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
          fs.writeFileSync(`${el.dir}/failed-daemon-${n}.log`, d.logs());
        } finally {
          await d.stop();
        }
      }
    } finally {
      writer.stop();
    }
  } catch (err) {
    errors.push((err as Error).message.split('\n')[0]);
    o.log(`  control phase FAILED: ${(err as Error).message}`);
  } finally {
    await el.destroy();
  }
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}

