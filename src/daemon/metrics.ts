// /metrics on the healthz server, in Prometheus' text format (prom-client):
// what an operator alerts on. Everything is read when scraped, from where
// it lives (the engine's counters, the daemon's state), never copied on the
// packet path:
//   weft_packets_total / weft_bytes_total{direction}    encapsulated (tx) and delivered (rx)
//   weft_drops_total / weft_dropped_bytes_total{reason} every drop counter of the engine
//   weft_peers{via}                                     peers in the forwarding state
//   weft_lease_expiry_timestamp_seconds                 when our lease ends (absent: never)
//   weft_source_errors_total                            failed calls to the store or the API
//   weft_ready                                          1 once subnet.env is written
import { Counter, Gauge, Registry } from 'prom-client';

import type { CounterValue } from '../native';
import type { DaemonStatus } from './status';

export interface MetricsSources {
  status: () => DaemonStatus;
  /** Failed calls to the lease source so far (src/store/common.ts counts them). */
  sourceErrors: () => number;
}

export function createMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  // One status read per scrape, shared by every collector of that scrape.
  let cached: { at: number; status: DaemonStatus } | null = null;
  const status = (): DaemonStatus => {
    if (!cached || Date.now() - cached.at > 50) cached = { at: Date.now(), status: src.status() };
    return cached.status;
  };
  const counters = (): Record<string, CounterValue> => status().counters ?? {};

  // Mirrors of monotonic native counters: set to their value at each scrape.
  function mirror(name: string, help: string, label: string, read: () => Array<[string, number]>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [l, v] of read()) this.inc({ [label]: l }, v);
      },
    });
  }
  const pick = (field: 'packets' | 'bytes', drops: boolean) => (): Array<[string, number]> =>
    Object.entries(counters())
      .filter(([k]) => (drops ? k.includes('_drop_') : k === 'tx_packets' || k === 'rx_packets'))
      .map(([k, v]) => [drops ? k.replace('_drop_', '_') : k.slice(0, 2), v[field]]);
  mirror('weft_packets_total', 'Packets encapsulated (tx) and delivered (rx) by the engine', 'direction', pick('packets', false));
  mirror('weft_bytes_total', 'Inner bytes encapsulated (tx) and delivered (rx) by the engine', 'direction', pick('bytes', false));
  mirror('weft_drops_total', 'Packets the engine dropped, by reason', 'reason', pick('packets', true));
  mirror('weft_dropped_bytes_total', 'Bytes the engine dropped, by reason', 'reason', pick('bytes', true));
  new Counter({
    name: 'weft_source_errors_total',
    help: 'Failed calls to the lease source (etcd, the embedded store, the Kubernetes API)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(src.sourceErrors());
    },
  });
  new Gauge({
    name: 'weft_peers',
    help: 'Peers in the forwarding state, by path (engine: encapsulated; route: a kernel route)',
    labelNames: ['via'],
    registers: [registry],
    collect() {
      const peers = status().peers;
      this.set({ via: 'engine' }, peers.filter((p) => p.via === 'engine').length);
      this.set({ via: 'route' }, peers.filter((p) => p.via === 'route').length);
    },
  });
  new Gauge({
    name: 'weft_lease_expiry_timestamp_seconds',
    help: 'When our lease expires (Unix time); absent for a lease that does not expire',
    registers: [registry],
    collect() {
      this.reset();
      const exp = status().leaseExpiration;
      if (exp) this.set(Date.parse(exp) / 1000);
    },
  });
  new Gauge({
    name: 'weft_ready',
    help: '1 once the data plane is up and subnet.env is written',
    registers: [registry],
    collect() {
      this.set(status().ready ? 1 : 0);
    },
  });
  return registry;
}
