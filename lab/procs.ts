// Processes a long lab run (the bench) starts are registered here, so an
// interrupted run (SIGINT, an exception) can kill exactly those, by pid,
// and nothing else.
// Commands run asynchronously so the event loop (and the SIGINT handler)
// stays live during a 2-second iperf3.
import { type ChildProcess, spawn } from 'node:child_process';

import type { Netns } from './netns';

const live = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGKILLs every registered process still running. Safe to call twice. */
export function killTracked(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs cmd in ns (`ip netns exec`) and collects its output; SIGKILLed at
 * timeoutMs. Never rejects for a non-zero exit: callers read `code`.
 */
export function execIn(ns: Netns, cmd: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  const child = track(spawn('ip', ['netns', 'exec', ns.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

