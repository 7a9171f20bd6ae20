#!/usr/bin/env node
// weft's command line. `weft engine` runs one node's data plane with the
// peer table fed as JSON lines on stdin (the daemon with leases replaces it
// as the normal way to run weft).
import { parseArgs } from 'node:util';
import * as readline from 'node:readline';

import { Engine, type Peer } from './engine';
import { randomVtepMac } from './vtep';

const USAGE = `usage:
  weft [daemon] [flags]
      The node agent, flanneld's drop-in: net-conf, lease, subnet.env, data plane.
  weft status [--subnet-file F | --status-socket S] [--json]
      The running daemon's lease, peers and counters.
  weft config check FILE
      Validates a net-conf.json as flannel does; prints it normalized.
  weft engine --backend udp|vxlan --iface NAME --network CIDR --subnet CIDR
              [--bind-ip IP] [--port N] [--vni N] [--vtep-mac MAC] [--mtu N] [--batch N]
              [--no-offload] [--allow-any-source] [--strict-source]
      Runs the data plane. Reads JSON commands on stdin, one per line:
        {"op":"setPeers","peers":[{"subnet":"10.244.2.0/24","publicIp":"192.168.0.2","vtepMac":"..."}]}
        {"op":"updatePeers","upserts":[...],"removed":["10.244.3.0/24"]}
        {"op":"stats"} {"op":"peers"} {"op":"stop"}
      and answers each with one JSON line on stdout.
`;

function fail(message: string): never {
  process.stderr.write(`weft: ${message}\n`);
  process.exit(1);
}

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) fail(`--${name} must be a whole number, got "${v}"`);
  return Number(v);
}

async function runEngine(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      iface: { type: 'string' },
      network: { type: 'string' },
      subnet: { type: 'string' },
      'bind-ip': { type: 'string' },
      port: { type: 'string' },
      vni: { type: 'string' },
      'vtep-mac': { type: 'string' },
      mtu: { type: 'string' },
      batch: { type: 'string' },
      'no-offload': { type: 'boolean', default: false },
      'allow-any-source': { type: 'boolean', default: false },
      'strict-source': { type: 'boolean', default: false },
    },
  });
  const backend = values.backend;
  if (backend !== 'udp' && backend !== 'vxlan') fail(`--backend must be udp or vxlan, got "${backend ?? ''}"`);
  for (const k of ['iface', 'network', 'subnet'] as const) if (!values[k]) fail(`--${k} is required`);

  let engine: Engine;
  try {
    engine = await Engine.create({
      backend,
      iface: values.iface!,
      network: values.network!,
      subnet: values.subnet!,
      bindIp: values['bind-ip'],
      port: intOption('port', values.port),
      vni: intOption('vni', values.vni),
      vtepMac: backend === 'vxlan' ? (values['vtep-mac'] ?? randomVtepMac()) : undefined,
      mtu: intOption('mtu', values.mtu),
      batch: intOption('batch', values.batch),
      offload: !values['no-offload'],
      allowAnySource: values['allow-any-source'],
      strictSource: values['strict-source'],
    });
  } catch (err) {
    fail((err as Error).message);
  }

  const send = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let stopped = false;
  const stop = (why: string) => {
    if (stopped) return;
    stopped = true;
    const stats = engine.stats();
    engine.close();
    send({ event: 'stopped', why, stats });
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  send({
    event: 'ready',
    tun: engine.tunName,
    mtu: engine.mtu,
    bindIp: engine.bindIp,
    port: engine.port,
    vtepMac: engine.vtepMac ?? null,
  });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    try {
      const cmd = JSON.parse(line) as { op: string; peers?: Peer[]; upserts?: Peer[]; removed?: string[] };
      switch (cmd.op) {
        case 'setPeers':
          engine.setPeers(cmd.peers ?? []);
          return send({ ok: true });
        case 'updatePeers':
          engine.updatePeers(cmd.upserts ?? [], cmd.removed ?? []);
          return send({ ok: true });
        case 'peers':
          return send({ ok: true, peers: engine.peers() });
        case 'stats':
          return send({ ok: true, stats: engine.stats() });
        case 'stop':
          return stop('stop command');
        default:
          return send({ ok: false, error: `unknown op "${cmd.op}"` });
      }
    } catch (err) {
      send({ ok: false, error: (err as Error).message });
    }
  });
  // The controller went away: nothing can update the peer table any more.
  rl.on('close', () => stop('stdin closed'));
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'engine':
      return runEngine(rest);
    case 'status':
      return (await import('./daemon/run')).runStatus(rest);
    case 'config':
      if (rest[0] !== 'check' || rest.length !== 2) fail('usage: weft config check FILE');
      process.exitCode = (await import('./config/netconf')).runConfigCheck(rest[1]);
      return;
    case '-h':
    case '--help':
    case 'help': {
      const { flagsHelp } = await import('./daemon/flags');
      process.stdout.write(`${USAGE}\n\ndaemon flags (also as FLANNELD_<FLAG> environment variables):\n${flagsHelp()}\n`);
      return;
    }
    case 'daemon':
      return (await import('./daemon/run')).runDaemon(rest);
    default:
      // flanneld is run as `flanneld --flags...`: so is weft.
      if (cmd === undefined || cmd.startsWith('-')) return (await import('./daemon/run')).runDaemon(process.argv.slice(2));
      fail(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main().catch((err) => fail((err as Error).stack ?? String(err)));
