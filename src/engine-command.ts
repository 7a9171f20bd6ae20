// `weft engine`: one node's data plane alone, its peer table fed as JSON
// lines on stdin, one JSON answer per line on stdout. The lab and the tests
// drive it (lab/engine-process.ts) to test the engine without leases; the
// protocol's types are here so both ends share them.
import * as readline from 'node:readline';

import { cidrContains, formatCidr4, formatIp4, parseCidr4, parseIp4 } from './cidr';
import { args, fail, intOption, UsageError } from './cli-util';
import { DEFAULT_PORT } from './defaults';
import { Engine, overlayMtu } from './engine';
import { addon, type NativeStats } from './native';
import { parseMac, randomVtepMac } from './vtep';

/** A peer as the protocol carries it. */
export interface WirePeer {
  subnet: string;
  publicIp: string;
  vtepMac?: string;
}

export type EngineCommand =
  | { op: 'setPeers'; peers: WirePeer[] }
  | { op: 'updatePeers'; upserts: WirePeer[]; removed: string[] }
  | { op: 'peers' }
  | { op: 'stats' }
  | { op: 'stop' };

/** The first line: the engine is up. */
export interface EngineReady {
  event: 'ready';
  tun: string;
  mtu: number;
  bindIp: string;
  port: number;
  vtepMac: string | null;
}

/** One answer per command; `peers` and `stats` carry their data. */
export type EngineReply = { ok: true; peers?: WirePeer[]; stats?: NativeStats } | { ok: false; error: string };

/** The last line, on SIGTERM, a stop command or stdin closing. */
export interface EngineStopped {
  event: 'stopped';
  why: string;
  stats: NativeStats;
}

export async function runEngineCommand(argv: string[], help: string): Promise<void> {
  const { values: v } = args(argv, {
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
    'no-offload': { type: 'boolean' },
    'allow-any-source': { type: 'boolean' },
    'strict-source': { type: 'boolean' },
    'batch-bytes': { type: 'string' },
    'no-zero-copy': { type: 'boolean' },
    'no-send-runs': { type: 'boolean' },
    threads: { type: 'string' },
    'busy-poll-us': { type: 'string' },
    'tun-queue': { type: 'string' },
  });
  if (v.help) return void process.stdout.write(`${help}\n`);
  const backend = v.backend;
  if (backend !== 'udp' && backend !== 'vxlan') throw new UsageError(`--backend must be udp or vxlan, got "${backend ?? ''}"`);
  for (const k of ['iface', 'network', 'subnet']) if (!v[k]) throw new UsageError(`--${k} is required`);
  const cidr = (name: string) => {
    try {
      return parseCidr4(v[name] as string);
    } catch (err) {
      throw new UsageError(`--${name}: ${(err as Error).message}`);
    }
  };
  const network = cidr('network');
  const subnet = cidr('subnet');
  if (subnet.prefixLen < network.prefixLen || !cidrContains(network, subnet.ip)) {
    throw new UsageError(`subnet ${formatCidr4(subnet)} is not inside the Network ${formatCidr4(network)}`);
  }
  let link;
  try {
    link = addon.netlink.linkGet(v.iface as string);
  } catch (err) {
    fail(`interface "${v.iface}" not found (${(err as { code?: string }).code ?? 'ENODEV'})`);
  }
  const bindText = (v['bind-ip'] as string | undefined) ?? addon.netlink.addrList(link.index).find((a) => a.scope === 0)?.address;
  if (!bindText) fail(`interface "${v.iface}" has no global IPv4 address`);
  let bindIp: number;
  try {
    bindIp = parseIp4(bindText);
  } catch (err) {
    throw new UsageError(`--bind-ip: ${(err as Error).message}`);
  }
  const vtepMac = backend === 'vxlan' ? (v['vtep-mac'] ? parseMac(v['vtep-mac'] as string) : randomVtepMac()) : undefined;
  if (vtepMac === null) throw new UsageError(`--vtep-mac: not a MAC address: "${v['vtep-mac']}"`);
  const underlayMtu = intOption('mtu', v.mtu as string | undefined) ?? link.mtu;
  const threads = intOption('threads', v.threads as string | undefined);
  if (threads !== undefined && threads !== 0 && threads !== 1 && threads !== 2) throw new UsageError(`--threads must be 0 (by CPUs), 1 or 2, got ${threads}`);
  const batchBytes = intOption('batch-bytes', v['batch-bytes'] as string | undefined);
  if (batchBytes !== undefined && batchBytes !== 0 && (batchBytes < 4096 || batchBytes > 64 << 20)) {
    throw new UsageError(`--batch-bytes must be 0 (no cap) or 4096..${64 << 20}, got ${batchBytes}`);
  }
  const busyPollUs = intOption('busy-poll-us', v['busy-poll-us'] as string | undefined);
  if (busyPollUs !== undefined && busyPollUs > 10_000) throw new UsageError(`--busy-poll-us must be 0..10000, got ${busyPollUs}`);
  const tunQueue = intOption('tun-queue', v['tun-queue'] as string | undefined);
  if (tunQueue !== undefined && tunQueue > 100_000) throw new UsageError(`--tun-queue must be 0..100000, got ${tunQueue}`);

  let engine: Engine;
  try {
    engine = Engine.open({
      backend,
      bindIp,
      port: intOption('port', v.port as string | undefined) || DEFAULT_PORT[backend],
      vni: intOption('vni', v.vni as string | undefined),
      vtepMac,
      mtu: overlayMtu(backend, underlayMtu),
      batch: intOption('batch', v.batch as string | undefined),
      offload: !v['no-offload'],
      allowAnySource: !!v['allow-any-source'],
      strictSource: !!v['strict-source'],
      batchBytes,
      zeroCopy: !v['no-zero-copy'],
      sendRuns: !v['no-send-runs'],
      threads,
      busyPollUs,
      tunQueue,
    });
  } catch (err) {
    fail((err as Error).message);
  }
  try {
    await engine.start(network, subnet);
  } catch (err) {
    engine.close();
    fail((err as Error).message);
  }

  const fibPeer = (p: WirePeer) => ({ subnet: parseCidr4(p.subnet), publicIp: parseIp4(p.publicIp), vtepMac: p.vtepMac });
  const send = (o: EngineReady | EngineReply | EngineStopped) => process.stdout.write(`${JSON.stringify(o)}\n`);
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

  send({ event: 'ready', tun: engine.tunName, mtu: engine.mtu, bindIp: formatIp4(engine.bindIp), port: engine.port, vtepMac: engine.vtepMac ?? null });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    try {
      const cmd = JSON.parse(line) as EngineCommand;
      switch (cmd.op) {
        case 'setPeers':
          engine.setPeers((cmd.peers ?? []).map(fibPeer));
          return send({ ok: true });
        case 'updatePeers':
          engine.updatePeers((cmd.upserts ?? []).map(fibPeer), (cmd.removed ?? []).map((s) => parseCidr4(s)));
          return send({ ok: true });
        case 'peers':
          return send({
            ok: true,
            peers: engine.peers().map((p) => ({ subnet: formatCidr4(p.subnet), publicIp: formatIp4(p.publicIp), ...(p.vtepMac ? { vtepMac: p.vtepMac } : {}) })),
          });
        case 'stats':
          return send({ ok: true, stats: engine.stats() });
        case 'stop':
          return stop('stop command');
        default:
          return send({ ok: false, error: `unknown op "${(cmd as { op: string }).op}"` });
      }
    } catch (err) {
      send({ ok: false, error: (err as Error).message });
    }
  });
  // The controller went away: nothing can update the peer table any more.
  rl.on('close', () => stop('stdin closed'));
}
