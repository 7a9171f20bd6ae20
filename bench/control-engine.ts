// `npm run bench -- --only control`, engine part: run inside a lab node's
// namespace (it makes a TUN and a route), it opens a vxlan engine and times
// the peer table's two operations from the TypeScript side, packing
// included: a full push (Engine.setPeers, start-up and resync) and a
// one-peer delta (Engine.updatePeers, every lease event after that), at
// each size given. One JSON line on stdout.
//
//   ip netns exec NS node dist/bench/control-engine.js 500 5000 20000
import { parseIp4 } from '../src/cidr';
import { Engine, type FibPeer } from '../src/engine';
import { addon } from '../src/native';
import { type Summary, summarize } from './stats';

const FULL_RUNS = 9;
const DELTA_RUNS = 301;

/** Peer i (from 1): 10.a.b.0/24 at 172.16.0.0 + i, VtepMAC 0e:00:00:xx:xx:xx. */
export function syntheticPeer(i: number): FibPeer {
  const mac = `0e:00:00:${[(i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  return { subnet: { ip: ((10 << 24) | (i << 8)) >>> 0, prefixLen: 24 }, publicIp: (((172 << 24) | (16 << 16)) + i) >>> 0, vtepMac: mac };
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export interface EnginePushResult {
  peers: number;
  fullPushMs: Summary;
  /** One peer changed (a new public IP), added, or removed: one call each. */
  deltaUs: Summary;
  /** What the FIB held after the pushes (a check that the table is whole). */
  held: number;
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  const link = addon.netlink.linkGet('eth0');
  const addr = addon.netlink.addrList(link.index).find((a) => a.scope === 0);
  if (!addr) throw new Error('eth0 has no address');
  const engine = Engine.open({ backend: 'vxlan', bindIp: parseIp4(addr.address), port: 8472, mtu: 1450, vtepMac: '02:00:00:00:00:01', tunName: 'flannel.1' });
  const results: EnginePushResult[] = [];
  try {
    await engine.start({ ip: (10 << 24) >>> 0, prefixLen: 8 }, { ip: ((10 << 24) | (0xffff << 8)) >>> 0, prefixLen: 24 });
    for (const n of sizes) {
      const peers = Array.from({ length: n }, (_, k) => syntheticPeer(k + 1));
      const full: number[] = [];
      for (let r = 0; r < FULL_RUNS; r++) {
        const t0 = process.hrtime.bigint();
        engine.setPeers(peers);
        full.push(ms(t0));
      }
      const delta: number[] = [];
      for (let r = 0; r < DELTA_RUNS; r++) {
        const i = 1 + ((r * 7919) % n);
        const kind = r % 3;
        let t0: bigint;
        if (kind === 0) {
          // A peer's node got a new address.
          const p = { ...syntheticPeer(i), publicIp: syntheticPeer(i).publicIp + 100_000 };
          t0 = process.hrtime.bigint();
          engine.updatePeers([p], []);
        } else if (kind === 1) {
          t0 = process.hrtime.bigint();
          engine.updatePeers([], [syntheticPeer(i).subnet]);
        } else {
          t0 = process.hrtime.bigint();
          engine.updatePeers([syntheticPeer(1 + ((r - 1) * 7919) % n)], []);
        }
        delta.push(ms(t0) * 1000);
      }
      engine.setPeers(peers);
      results.push({ peers: n, fullPushMs: summarize(full)!, deltaUs: summarize(delta)!, held: engine.peers().length });
    }
  } finally {
    engine.close();
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`control-engine: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  });
}
