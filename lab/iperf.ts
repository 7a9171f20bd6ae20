// The lab's one iperf3 driver: a server in a namespace (restarted if a run
// leaves it broken), TCP runs, UDP probes at a fixed offered rate and the
// search for the highest rate with little loss (the bench), and iperf3(),
// one bounded TCP run between two namespaces (the demo and the tests).
import type { ChildProcess } from 'node:child_process';

import type { Netns } from './netns';
import { execIn, track } from './procs';
import { sleepMs as sleep } from './wait';

const PORT = '5201';

export class IperfServer {
  private child: ChildProcess | null = null;

  constructor(
    readonly ns: Netns,
    readonly ip: string,
  ) {}

  async start(): Promise<void> {
    this.stop();
    // --forceflush: a piped iperf3 would hold back "Server listening".
    const child = track(this.ns.spawn('iperf3', ['-s', '-p', PORT, '--forceflush']));
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`iperf3 server in ${this.ns.name} did not start: ${out}`)), 5000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Server listening')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`iperf3 server exited ${code}: ${out}`));
      });
    });
    // Drain its output from now on so a full pipe never blocks it.
    child.stdout!.removeAllListeners('data');
    child.stdout!.resume();
    child.stderr!.resume();
  }

  stop(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    this.child = null;
  }

  /** Runs one client test; on failure restarts the server once and retries. */
  async client(from: Netns, args: string[], seconds: number): Promise<IperfJson> {
    let lastErr = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await execIn(from, 'iperf3', ['-c', this.ip, '-p', PORT, '-J', ...args], (seconds + 10) * 1000);
      try {
        const j = JSON.parse(r.stdout) as IperfJson;
        if (!j.error) return j;
        lastErr = j.error;
      } catch {
        lastErr = `exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
      }
      await this.start();
      await sleep(100);
    }
    throw new Error(`iperf3 ${args.join(' ')}: ${lastErr}`);
  }
}

interface IperfSum {
  seconds: number;
  bytes: number;
  bits_per_second: number;
  packets?: number;
  lost_packets?: number;
  lost_percent?: number;
  retransmits?: number;
}

export interface IperfJson {
  error?: string;
  end: { sum?: IperfSum; sum_sent: IperfSum; sum_received: IperfSum };
}

export interface TcpResult {
  gbps: number;
  /** What the receiver got. */
  bytes: number;
  retransmits: number;
  seconds: number;
}

export async function tcpRun(server: IperfServer, from: Netns, seconds: number, streams: number): Promise<TcpResult> {
  const args = ['-t', String(seconds), ...(streams > 1 ? ['-P', String(streams)] : [])];
  const j = await server.client(from, args, seconds);
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    bytes: j.end.sum_received.bytes,
    retransmits: j.end.sum_sent.retransmits ?? 0,
    seconds: j.end.sum_received.seconds,
  };
}

/**
 * iperf3's socket buffers for UDP (-w, passed to the server too). With the
 * default ~208 KiB the iperf3 server, one thread sharing two cores with the
 * data plane, overflows its own socket in scheduling gaps: the kernel row
 * then "lost" 1-10 % at rates its path carried, and the figure measured
 * iperf3's wake-ups more than the overlay. 1 MiB (under the lab's
 * rmem_max of 4 MiB) removes that for every row alike.
 */
const UDP_SOCKET_BUFFER = '1M';

export interface UdpProbe {
  /** What was asked of iperf3 (packets/s); 0 = unlimited (-b 0). */
  targetPps: number;
  /** What the client actually sent, packets/s. */
  sentPps: number;
  sent: number;
  received: number;
  /** 1 - received/sent: counts tail loss too, which iperf3's own lost_percent cannot see. */
  loss: number;
  iperfLostPercent: number;
}

export async function udpProbe(server: IperfServer, from: Netns, size: number, targetPps: number, seconds: number): Promise<UdpProbe> {
  const bps = targetPps > 0 ? Math.round(targetPps * size * 8) : 0;
  const args = ['-u', '-l', String(size), '-b', String(bps), '-t', String(seconds), '-w', UDP_SOCKET_BUFFER];
  const j = await server.client(from, args, seconds);
  const s = j.end.sum_sent;
  const r = j.end.sum_received;
  const sent = s.packets ?? Math.round(s.bytes / size);
  const received = Math.round(r.bytes / size);
  return {
    targetPps,
    sentPps: sent / s.seconds,
    sent,
    received,
    loss: sent > 0 ? Math.max(0, 1 - received / sent) : 1,
    iperfLostPercent: r.lost_percent ?? 0,
  };
}

export interface UdpSearch {
  /** Highest offered rate (as sent) with loss <= maxLoss, packets/s; 0 if none passed. */
  bestPps: number;
  /** The sender itself could not go faster without loss: bestPps is the sender's limit, not the path's. */
  senderBound: boolean;
  probes: UdpProbe[];
}

/**
 * The highest offered rate with at most maxLoss loss, in at most `probes`
 * probes. First an unlimited probe: if it passes, the path outran the
 * sender and that is the answer. Otherwise what it delivered is a good
 * guess of the capacity, so the next probe offers just under that, and the
 * rest bisect (geometrically) between the best pass and the lowest fail.
 */
export async function udpSearch(
  server: IperfServer,
  from: Netns,
  size: number,
  o: { probes: number; seconds: number; maxLoss: number },
): Promise<UdpSearch> {
  const probes: UdpProbe[] = [];
  const first = await udpProbe(server, from, size, 0, o.seconds);
  probes.push(first);
  if (first.loss <= o.maxLoss) return { bestPps: first.sentPps, senderBound: true, probes };
  let lo = 0; // highest passing target
  let best = 0; // its measured sent rate
  let hi = first.sentPps; // lowest failing rate
  let target = first.sentPps * (1 - first.loss) * 0.95;
  while (probes.length < o.probes) {
    await sleep(50); // let the previous probe's queues drain
    const p = await udpProbe(server, from, size, target, o.seconds);
    probes.push(p);
    if (p.loss <= o.maxLoss) {
      lo = target;
      best = Math.max(best, p.sentPps);
    } else {
      hi = Math.min(hi, target);
    }
    if (lo > 0 && hi / lo < 1.05) break;
    target = lo > 0 ? Math.sqrt(lo * hi) : target * 0.6;
  }
  return { bestPps: best, senderBound: false, probes };
}

export interface IperfResult {
  bitsPerSecond: number;
  retransmits: number;
}

/** One TCP run of `seconds` from client to a server started for it in `server`, bounded in time. */
export async function iperf3(client: Netns, server: Netns, serverIp: string, seconds: number, extra: string[] = []): Promise<IperfResult> {
  const srv = new IperfServer(server, serverIp);
  await srv.start();
  try {
    const j = await srv.client(client, ['-t', String(seconds), ...extra], seconds);
    const sum = j.end.sum_received ?? j.end.sum!;
    return { bitsPerSecond: sum.bits_per_second, retransmits: j.end.sum_sent?.retransmits ?? 0 };
  } finally {
    srv.stop();
  }
}
