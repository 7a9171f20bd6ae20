// Where lost UDP packets went: the kernel's own drop counters at each hop
// of pod1 -> pod2, read before and after a rate search. The engine counts
// only what it sees; a packet the TUN queue or a socket buffer dropped
// never reaches it. Cheap (a few `ip`/`cat` calls), diagnostic only.
//
//   pod1 -> [node1: overlay dev tx dropped] -> eth0 ... -> [node2: underlay UDP RcvbufErrors]
//        -> [node2: overlay dev rx/tx dropped] -> [pod2: iperf3's UDP RcvbufErrors]
import type { Netns } from '../lab/netns';
import type { Lab } from '../lab/topology';

export type DropCounters = Record<string, number>;

function linkDrops(ns: Netns, dev: string): { tx: number; rx: number } {
  try {
    const j = JSON.parse(ns.ip('-s', '-j', 'link', 'show', 'dev', dev)) as Array<{
      stats64: { rx: { dropped: number }; tx: { dropped: number } };
    }>;
    return { tx: j[0].stats64.tx.dropped, rx: j[0].stats64.rx.dropped };
  } catch {
    return { tx: NaN, rx: NaN };
  }
}

function udpErrors(ns: Netns): { rcvbuf: number; inErrors: number } {
  const snmp = ns.exec('cat', ['/proc/net/snmp']);
  const lines = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return { rcvbuf: NaN, inErrors: NaN };
  const names = lines[0].split(/\s+/);
  const vals = lines[1].split(/\s+/).map(Number);
  const get = (n: string) => vals[names.indexOf(n)];
  return { rcvbuf: get('RcvbufErrors'), inErrors: get('InErrors') };
}

/** overlayDev null: a row with no overlay device (routes only); its hops are not read. */
export function dropSnapshot(lab: Lab, overlayDev: string | null): DropCounters {
  const [n1, n2] = lab.nodes;
  const out: DropCounters = {};
  if (overlayDev) {
    const d1 = linkDrops(n1.ns, overlayDev);
    const d2 = linkDrops(n2.ns, overlayDev);
    out['node1 overlay dev tx dropped'] = d1.tx;
    out['node2 overlay dev rx dropped'] = d2.rx;
    out['node2 overlay dev tx dropped'] = d2.tx;
    out['node2 underlay UDP RcvbufErrors'] = udpErrors(n2.ns).rcvbuf;
  }
  out['pod2 UDP RcvbufErrors'] = udpErrors(n2.pod).rcvbuf;
  return out;
}

export function dropDelta(before: DropCounters, after: DropCounters): DropCounters {
  const out: DropCounters = {};
  for (const k of Object.keys(after)) out[k] = after[k] - (before[k] ?? 0);
  return out;
}
