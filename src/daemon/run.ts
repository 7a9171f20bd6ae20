// `weft [flags]`: the daemon's process life. One clear line on stderr for
// anything that stops start-up; SIGTERM/SIGINT stop it cleanly, keeping
// the lease for the restart.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { createLogger } from '../log';
import { Daemon, type DaemonStatus, StartupError, Stopped, statusSocketPath } from './daemon';
import { type DaemonFlags, parseDaemonFlags } from './flags';

function die(message: string, code = 1): never {
  process.stderr.write(`weft: ${message}\n`);
  process.exit(code);
}

function weftVersion(): string {
  // dist/src/daemon/run.js -> package.json
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * The flags of a command line, or the process ends the way flanneld's would:
 * -h and --version print on stderr and exit 0, a flag error prints the
 * message and the usage and exits 0 (flannel's usage() does), a bad setting
 * exits 1.
 */
function flagsOrExit(argv: string[]): { flags: DaemonFlags; warnings: string[] } {
  const r = parseDaemonFlags(argv);
  switch (r.kind) {
    case 'run':
      return r;
    case 'help':
      process.stderr.write(r.text);
      process.exit(0);
    case 'version':
      process.stderr.write(`${weftVersion()}\n`);
      process.exit(0);
    case 'error':
      process.stderr.write(`weft: ${r.message}\n${r.usage ?? ''}`);
      process.exit(r.exitCode);
  }
}

export async function runDaemon(argv: string[]): Promise<void> {
  const { flags, warnings } = flagsOrExit(argv);
  const log = createLogger(flags.verbosity);
  for (const w of warnings) log.warn(w);
  const daemon = new Daemon(flags, log);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      log.info(`received ${sig}, shutting down`);
      void daemon.shutdown(0);
    });
  }
  try {
    await daemon.start();
  } catch (err) {
    // A SIGTERM during start-up closes the store under an in-flight call: that
    // failure is the stop, not a start-up error.
    const stopped = err instanceof Stopped || daemon.stopRequested;
    await daemon.shutdown(stopped ? 0 : 1);
    if (stopped) process.exit(0);
    log.error({ err: (err as Error).message, stack: err instanceof StartupError ? undefined : (err as Error).stack }, 'start-up failed');
    die((err as Error).message ?? String(err));
  }
  process.exit(await daemon.done);
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
    sock.on('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`no weft daemon answers on ${socketPath} (${err.code ?? err.message}); is it running? (--status-socket, --subnet-file)`)),
    );
  });
}

export async function runStatus(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const { flags } = flagsOrExit(argv.filter((a) => a !== '--json'));
  let s: DaemonStatus;
  try {
    s = await readStatus(statusSocketPath(flags));
  } catch (err) {
    die((err as Error).message);
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return;
  }
  const lines = [
    `backend   ${s.backend}    network ${s.network}    ${s.ready ? 'ready' : 'NOT READY'}`,
    `lease     ${s.subnet}  public IP ${s.publicIp}${s.vtepMac ? `  VtepMAC ${s.vtepMac}` : ''}  expires ${s.leaseExpiration ?? 'never (reservation)'}`,
    `device    ${s.tun}  MTU ${s.mtu}`,
    '',
    `peers (${s.peers.length})`,
    ...s.peers.map((p) => `  ${p.subnet.padEnd(18)} ${p.publicIp.padEnd(15)} ${p.vtepMac ?? ''}`),
    '',
    'counters      packets        bytes',
    ...Object.entries(s.counters)
      .filter(([k, v]) => v.packets > 0 || k === 'tx_packets' || k === 'rx_packets')
      .map(([k, v]) => `  ${k.padEnd(26)} ${String(v.packets).padStart(10)} ${String(v.bytes).padStart(14)}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
