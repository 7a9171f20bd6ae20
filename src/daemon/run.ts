// `weft [flags]`: the daemon's process life. One clear line on stderr for
// anything that stops start-up. The flags end the process the way flanneld's
// would: -h and --version print on stderr and exit 0, a flag error prints the
// message and the usage and exits 0 (flannel's usage() does), a bad setting
// exits 1. Every signal a node agent gets has a decided behaviour (README,
// "Signals"):
//   SIGTERM, SIGINT, SIGQUIT  stop cleanly: exit 0, the lease kept for the restart
//   SIGHUP                    ignored, with a log line (there is no config to reload)
//   SIGUSR1, SIGUSR2          one status line in the log; never Node's inspector,
//                             which SIGUSR1 would otherwise open on 127.0.0.1:9229
//   SIGPIPE                   ignored (Node's default: a write fails instead)
import * as fs from 'node:fs';
import * as path from 'node:path';

import { createLogger } from '../log';
import { Daemon, StartupError, StoppedDuringStartup } from './daemon';
import { type DaemonFlags, parseDaemonFlags } from './flags';

function die(message: string): never {
  process.stderr.write(`weft: ${message}\n`);
  process.exit(1);
}

export function weftVersion(): string {
  // dist/src/daemon/run.js -> package.json
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

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
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
    process.on(sig, () => {
      log.info(`received ${sig}, shutting down`);
      void daemon.shutdown(0);
    });
  }
  process.removeAllListeners('SIGHUP');
  process.on('SIGHUP', () => log.info('received SIGHUP: ignored (weft has no configuration to reload; restart it to apply changes)'));
  for (const sig of ['SIGUSR1', 'SIGUSR2'] as const) {
    process.removeAllListeners(sig);
    process.on(sig, () => log.info({ signal: sig }, `status: ${daemon.summary()}`));
  }
  try {
    await daemon.start();
  } catch (err) {
    // A SIGTERM during start-up closes the store under an in-flight call: that
    // failure is the stop, not a start-up error.
    const stopped = err instanceof StoppedDuringStartup || daemon.stopRequested;
    await daemon.shutdown(stopped ? 0 : 1);
    if (stopped) process.exit(0);
    const user = err instanceof StartupError;
    log.error({ err: (err as Error).message, stack: user ? undefined : (err as Error).stack }, 'start-up failed');
    die(user ? (err as Error).message : `internal error: ${(err as Error).message} (the log has the stack)`);
  }
  process.exit(await daemon.done);
}
