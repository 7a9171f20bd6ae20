// kubectl, the client nobody here wrote, run against the lab API server the
// way an operator runs it: a kubeconfig per identity, its own discovery
// cache (so no run reads another's), on the host or inside a lab namespace.
// The binary is $KUBECTL or kubectl on PATH: Debian's kubernetes-client
// (1.20) on a fresh machine, whatever is installed elsewhere.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as path from 'node:path';

import type { Netns } from '../netns';
import { until } from '../wait';

export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

export interface KubectlOptions {
  kubeconfig: string;
  ns?: Netns;
  timeoutMs?: number;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

function argv(args: string[], o: KubectlOptions): [string, string[]] {
  const full = ['--kubeconfig', o.kubeconfig, '--cache-dir', path.join(path.dirname(o.kubeconfig), 'kubectl-cache'), ...args];
  return o.ns ? ['ip', ['netns', 'exec', o.ns.name, KUBECTL, ...full]] : [KUBECTL, full];
}

// KUBECONFIG and the like from the caller's shell must not pick the cluster.
const env = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUBE')));

/** Runs kubectl to completion; never throws for a non-zero exit (tests look at it). */
export function kubectl(args: string[], o: KubectlOptions): Promise<KubectlResult> {
  const [cmd, a] = argv(args, o);
  return new Promise((resolve) => {
    execFile(cmd, a, { env: env(), timeout: o.timeoutMs ?? 20_000, encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Whether this kubectl has `patch --subresource` (1.24 and later; Debian's 1.20 has not). */
export async function kubectlHasSubresource(o: KubectlOptions): Promise<boolean> {
  return (await kubectl(['patch', '--help'], o)).stdout.includes('--subresource');
}

/**
 * A long-running kubectl (e.g. `get nodes --watch -o json`) whose stdout is
 * a stream of JSON documents, compact or indented, collected as they come.
 */
export class KubectlStream {
  readonly docs: unknown[] = [];
  stderr = '';
  private buf = '';
  private readonly child: ChildProcess;

  constructor(args: string[], o: KubectlOptions) {
    const [cmd, a] = argv(args, o);
    this.child = spawn(cmd, a, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => this.feed(s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
  }

  /** Waits for a document pred accepts; resolves to it. */
  waitFor<T>(what: string, ms: number, pred: (doc: T) => boolean): Promise<T> {
    return until(`kubectl ${what}`, ms, async () => (this.docs as T[]).find(pred));
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }

  /** Splits complete top-level JSON values off the buffer. */
  private feed(s: string): void {
    this.buf += s;
    let depth = 0;
    let inString = false;
    let escaped = false;
    let start = -1;
    let consumed = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') {
        if (depth++ === 0) start = i;
      } else if (c === '}' && --depth === 0) {
        this.docs.push(JSON.parse(this.buf.slice(start, i + 1)));
        consumed = i + 1;
      }
    }
    this.buf = this.buf.slice(consumed);
  }
}
