// Lab scenarios shared by the demo and the netns tests: weft engines on
// every node with each other as peers, and the traffic checks run over them.
import * as path from 'node:path';

import type { WirePeer as Peer } from '../src/engine-command';
import type { WireFormat } from '../src/native';
import { randomVtepMac } from '../src/vtep';
import { EngineProcess } from './engine-process';
import type { Netns } from './netns';
import { until } from './wait';
import { LAB_NETWORK, type Lab, type LabNode } from './topology';

export interface WeftNode {
  node: LabNode;
  engine: EngineProcess;
  vtepMac: string;
}

export function engineArgs(backend: WireFormat, node: LabNode, vtepMac: string): string[] {
  const args = ['--backend', backend, '--iface', 'eth0', '--network', LAB_NETWORK, '--subnet', node.subnet];
  return backend === 'vxlan' ? [...args, '--vtep-mac', vtepMac] : args;
}

/** Starts weft on the given nodes (default all) and gives each the others as peers. */
export async function startWeft(lab: Lab, backend: WireFormat, nodes = lab.nodes, extraArgs: string[] = []): Promise<WeftNode[]> {
  const started: WeftNode[] = [];
  try {
    for (const node of nodes) {
      const vtepMac = randomVtepMac();
      started.push({ node, vtepMac, engine: await EngineProcess.start(node.ns, [...engineArgs(backend, node, vtepMac), ...extraArgs]) });
    }
    for (const w of started) {
      await w.engine.setPeers(started.filter((o) => o !== w).map((o) => peerOf(o.node, o.vtepMac)));
    }
    return started;
  } catch (err) {
    await Promise.all(started.map((w) => w.engine.stop()));
    throw err;
  }
}

export function peerOf(node: LabNode, vtepMac?: string): Peer {
  return { subnet: node.subnet, publicIp: node.underlayIp, ...(vtepMac ? { vtepMac } : {}) };
}

export interface PingResult {
  sent: number;
  received: number;
  rttAvgMs: number | null;
  /** Every reply's time=, in order. */
  rttsMs: number[];
}

/** ping's output, read once here for every caller: counts from its summary, each reply's time=. */
export function parsePing(out: string, count: number): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(out);
  return {
    sent: m ? Number(m[1]) : count,
    received: m ? Number(m[2]) : 0,
    rttAvgMs: avg ? Number(avg[1]) : null,
    rttsMs: [...out.matchAll(/time=([\d.]+) ms/g)].map((x) => Number(x[1])),
  };
}

export function ping(from: Netns, to: string, count = 3, extra: string[] = []): PingResult {
  let out: string;
  try {
    out = from.exec('ping', ['-n', '-c', String(count), '-i', '0.2', '-W', '2', ...extra, to], 30_000);
  } catch (err) {
    out = (err as Error).message;
  }
  return parsePing(out, count);
}

export interface TransferResult {
  bytes: number;
  sentSha256: string;
  receivedBytes: number;
  receivedSha256: string;
  seconds: number;
}

const TRANSFER = path.resolve(__dirname, 'tcp-transfer.js');

/** Sends `bytes` random bytes over TCP from one namespace to toIp:port in another. */
export async function tcpTransfer(from: Netns, to: Netns, toIp: string, bytes: number, port = 5201): Promise<TransferResult> {
  const server = to.spawn(process.execPath, [TRANSFER, 'serve', String(port)]);
  const serverOut: string[] = [];
  let serverErr = '';
  server.stderr!.on('data', (d: Buffer) => (serverErr += d.toString()));
  const serverDone = new Promise<string>((resolve, reject) => {
    let buf = '';
    server.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) serverOut.push(l);
    });
    server.once('exit', () => {
      const result = serverOut.find((l) => l.startsWith('{'));
      if (result) resolve(result);
      else reject(new Error(`tcp-transfer server exited without a result: ${serverErr}`));
    });
  });
  serverDone.catch(() => undefined); // awaited below; a failure before that must not go unhandled
  const killer = setTimeout(() => server.kill('SIGKILL'), 60_000);
  try {
    await until('tcp-transfer server listening', 10_000, async () => serverOut.includes('listening'), {
      everyMs: 20,
      fatal: () => (server.exitCode !== null ? new Error(`tcp-transfer server failed: ${serverErr}`) : undefined),
    });
    const t0 = process.hrtime.bigint();
    const sent = JSON.parse(from.exec(process.execPath, [TRANSFER, 'send', toIp, String(port), String(bytes)], 60_000));
    const received = JSON.parse(await serverDone);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { bytes: sent.bytes, sentSha256: sent.sha256, receivedBytes: received.bytes, receivedSha256: received.sha256, seconds };
  } finally {
    clearTimeout(killer);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}
