#!/usr/bin/env node
// weft's command line: the daemon (flanneld's drop-in, the default), and the
// small commands around it. Every command answers --help; a user error is one
// line on stderr and exit 1, never a stack trace.
//
// `weft engine` runs one node's data plane alone with the peer table fed as
// JSON lines on stdin (the lab and the tests use it to test the engine
// without leases).
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

import { args, fail, UsageError } from './cli-util';

// A node agent runs on every node. Loading the etcd client and decoding
// thousands of leases makes V8 grow its young generation to 3 x 16 MB,
// which it never gives back. With growth factor 1 it stays at its first
// size: a few more (small) scavenges, and ~30 MB less RSS with 5,000 leases
// (bench/README.md, control plane). V8 reads this flag whenever it would
// resize, so setting it before the heavy imports works; the size flags
// (--max-semi-space-size) only work on node's own command line, and
// NODE_OPTIONS refuses them.
setFlagsFromString('--semi-space-growth-factor=1');

// Before anything else: SIGUSR1 would open Node's inspector, a root shell
// for any local user. A listener replaces that default (the daemon gives it
// a meaning of its own, src/daemon/run.ts).
process.on('SIGUSR1', () => undefined);

const USAGE = `usage: weft [command] [flags]

commands:
  (none), daemon   the node agent, flanneld's drop-in (weft --help lists its flags)
  status           the running daemon's lease, peers and counters
  config check     validates a net-conf.json as flannel does
  engine           the data plane alone, peers fed on stdin (for labs and tests)
  version          prints weft's version

weft COMMAND --help describes a command.`;

const HELP: Record<string, string> = {
  status: `usage: weft status [--subnet-file FILE | --status-socket SOCK] [--json]
  Asks the running daemon (over its status socket, by default beside the
  subnet file) for its lease, peers and counters. Root only, unless the
  daemon runs with --status-socket-group.
  --subnet-file FILE    the daemon's --subnet-file (default /run/flannel/subnet.env)
  --status-socket SOCK  the daemon's --status-socket
  --json                the whole status as JSON`,
  config: `usage: weft config check FILE
  Validates a net-conf.json as flanneld would and prints it normalized
  (defaults filled in); exit 1 with flannel's message if it is not valid.`,
  engine: `usage: weft engine --backend udp|vxlan --iface NAME --network CIDR --subnet CIDR
                   [--bind-ip IP] [--port N] [--vni N] [--vtep-mac MAC] [--mtu N]
                   [--batch N] [--no-offload] [--allow-any-source] [--strict-source]
                   [--batch-bytes N] [--no-zero-copy] [--no-send-runs] [--threads 0|1|2]
                   [--busy-poll-us N] [--tun-queue N]
  Runs the data plane alone: TUN, address, Network route, threads. --mtu is
  the underlay MTU (default: the interface's). The last six are the speed
  options (native/core/engine.h), there so a bench can turn each one back. Reads JSON commands on stdin,
  one per line, and answers each with one JSON line on stdout:
    {"op":"setPeers","peers":[{"subnet":"10.244.2.0/24","publicIp":"192.168.0.2","vtepMac":"..."}]}
    {"op":"updatePeers","upserts":[...],"removed":["10.244.3.0/24"]}
    {"op":"stats"} {"op":"peers"} {"op":"stop"}`,
  version: 'usage: weft version\n  Prints the version (also: weft --version).',
};


async function runStatusCommand(argv: string[]): Promise<void> {
  const { values } = args(argv, { 'subnet-file': { type: 'string' }, 'status-socket': { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return void process.stdout.write(`${HELP.status}\n`);
  const { readStatus } = await import('./daemon/status');
  const { statusSocketPath } = await import('./daemon/status');
  const { DEFAULT_SUBNET_FILE } = await import('./defaults');
  const socket = statusSocketPath(
    (values['subnet-file'] as string | undefined) ?? process.env.FLANNELD_SUBNET_FILE ?? DEFAULT_SUBNET_FILE,
    (values['status-socket'] as string | undefined) ?? process.env.FLANNELD_STATUS_SOCKET ?? '',
  );
  let s;
  try {
    s = await readStatus(socket);
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.json) return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  if (!s.subnet) return void process.stdout.write(`weft daemon (pid ${s.pid}) is starting: no lease yet\n`);
  const lines = [
    `backend   ${s.backend}    network ${s.network}    ${s.ready ? 'ready' : 'NOT READY'}`,
    `lease     ${s.subnet}  public IP ${s.publicIp}${s.vtepMac ? `  VtepMAC ${s.vtepMac}` : ''}  expires ${s.leaseExpiration ?? 'never'}`,
    `device    ${s.tun ?? '(none: kernel routes)'}  MTU ${s.mtu}`,
    `store     ${s.store}`,
    '',
    `peers (${s.peers.length})`,
    ...s.peers.map((p) => `  ${p.subnet.padEnd(18)} ${p.publicIp.padEnd(15)} ${(p.vtepMac ?? '').padEnd(17)} ${p.via}`),
  ];
  if (s.counters) {
    lines.push(
      '',
      'counters      packets        bytes',
      ...Object.entries(s.counters)
        .filter(([k, v]) => v.packets > 0 || k === 'tx_packets' || k === 'rx_packets')
        .map(([k, v]) => `  ${k.padEnd(26)} ${String(v.packets).padStart(10)} ${String(v.bytes).padStart(14)}`),
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function runConfigCommand(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv, {});
  if (values.help || positionals[0] === 'help') return void process.stdout.write(`${HELP.config}\n`);
  if (positionals[0] !== 'check' || positionals.length !== 2) throw new UsageError(`usage: weft config check FILE`);
  const file = positionals[1];
  const { loadNetConf, netConfToJSON } = await import('./config/netconf');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`${file}: cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    process.stdout.write(`${netConfToJSON(loadNetConf(text))}\n`);
  } catch (e) {
    fail(`${file}: ${(e as Error).message}`);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'status':
      return runStatusCommand(rest);
    case 'config':
      return runConfigCommand(rest);
    case 'engine':
      return (await import('./engine-command')).runEngineCommand(rest, HELP.engine);
    case 'version':
      return void process.stdout.write(`weft ${(await import('./daemon/run')).weftVersion()}\n`);
    case 'help': {
      if (rest[0] && HELP[rest[0]]) return void process.stdout.write(`${HELP[rest[0]]}\n`);
      const { flagsHelp } = await import('./daemon/flags');
      return void process.stdout.write(`${USAGE}\n\ndaemon flags (also as FLANNELD_<FLAG> environment variables):\n${flagsHelp()}\n`);
    }
    case 'daemon':
      return (await import('./daemon/run')).runDaemon(rest);
    default:
      // flanneld is run as `flanneld --flags...`: so is weft. flanneld takes
      // no commands, so a first word that is not one of ours is a typo, not
      // a positional argument to ignore.
      if (cmd === undefined || cmd.startsWith('-')) return (await import('./daemon/run')).runDaemon(argv);
      throw new UsageError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main().catch((err) => {
  if (err instanceof UsageError) fail(err.message);
  fail(`internal error: ${(err as Error).stack ?? String(err)}`);
});
