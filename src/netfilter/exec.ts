// Running iptables, iptables-restore and nft: no shell, a timeout on every
// call, and errors that name the command line and carry what it printed.
//
// An exit status is an answer, not always a failure: `iptables -C` and
// `iptables -S chain 1` say "no" with status 1. So runCommand resolves with
// the status and leaves the judgement to the caller; only a binary that
// cannot be run (not installed, not executable) or a timeout rejects.
import { execFile } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A binary that could not be run at all: not in PATH, or not executable. */
export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    why: string,
  ) {
    super(`${binary} binary was not found: ${why}`);
  }
}

// iptables --wait waits for the xtables lock without limit; a host whose lock
// is held that long has a problem the operator must see, not a hung daemon.
const DEFAULT_TIMEOUT_MS = 30_000;

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].join(' ');
}

export function runCommand(cmd: string, args: readonly string[], input?: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
      if (e.code === 'ENOENT') {
        return reject(new MissingBinaryError(cmd, `"${cmd}" is not in PATH (${process.env.PATH ?? ''})`));
      }
      if (e.code === 'EACCES') return reject(new MissingBinaryError(cmd, `"${cmd}" is not executable`));
      if (e.killed || e.signal) {
        const why = e.killed ? `timed out after ${timeoutMs / 1000} s` : `killed by ${e.signal}`;
        return reject(new Error(`${commandLine(cmd, args)}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
      }
      if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr });
      reject(new Error(`${commandLine(cmd, args)}: ${e.message}`));
    });
    // The child may exit before reading its input (a bad flag); that EPIPE is
    // not the error to report, its exit status and stderr are.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** Runs the command and throws unless it exits 0; the error names the command line and its stderr. */
export async function mustRun(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await runCommand(cmd, args, input);
  if (r.code !== 0) throw new Error(`${commandLine(cmd, args)} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
