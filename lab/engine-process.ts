// Drives `weft engine` in a namespace: one process per lab node, commanded
// by JSON lines, as a test or the demo needs.
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

import type { EngineCommand, EngineReady, EngineReply, EngineStopped, WirePeer } from '../src/engine-command';
import type { NativeStats } from '../src/native';
import type { Netns } from './netns';

export const CLI = path.resolve(__dirname, '..', 'src', 'cli.js');

type Reply = EngineReply;

export class EngineProcess {
  private pending: Array<(r: Reply) => void> = [];
  private exited: Promise<{ code: number | null; stopped?: { stats: NativeStats } }>;
  private stopped?: { stats: NativeStats };

  private constructor(
    readonly child: ChildProcess,
    readonly ready: EngineReady,
    lines: readline.Interface,
    readonly stderr: () => string,
  ) {
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as Reply | EngineStopped;
      if ('event' in msg) this.stopped = { stats: msg.stats };
      else this.pending.shift()?.(msg);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => resolve({ code, stopped: this.stopped })),
    );
  }

  /** Starts `weft engine ARGS` in ns; rejects with its stderr if it exits first. */
  static start(ns: Netns, args: string[], timeoutMs = 15_000): Promise<EngineProcess> {
    const child = ns.spawn(process.execPath, [CLI, 'engine', ...args]);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const lines = readline.createInterface({ input: child.stdout! });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`weft engine in ${ns.name} not ready after ${timeoutMs} ms: ${err}`));
      }, timeoutMs);
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(Object.assign(new Error(`weft engine in ${ns.name} exited ${code}: ${err.trim()}`), { exitCode: code, stderr: err }));
      };
      child.once('exit', onExit);
      lines.once('line', (line) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        const ready = JSON.parse(line) as EngineReady;
        resolve(new EngineProcess(child, ready, lines, () => err));
      });
    });
  }

  request(cmd: EngineCommand): Promise<Extract<Reply, { ok: true }>> {
    return new Promise((resolve, reject) => {
      this.pending.push((r) => (r.ok ? resolve(r) : reject(new Error(r.error))));
      this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  async setPeers(peers: WirePeer[]): Promise<void> {
    await this.request({ op: 'setPeers', peers });
  }

  async updatePeers(upserts: WirePeer[], removed: string[]): Promise<void> {
    await this.request({ op: 'updatePeers', upserts, removed });
  }

  async peers(): Promise<WirePeer[]> {
    return (await this.request({ op: 'peers' })).peers ?? [];
  }

  async stats(): Promise<NativeStats> {
    return (await this.request({ op: 'stats' })).stats!;
  }

  /** SIGTERM and wait; resolves with the final stats the process printed. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; stats?: NativeStats }> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { code: r.code, stats: r.stopped?.stats };
  }
}
