// Microbenchmarks of the packet core: encap and decap of one batch of
// packets, both wire formats, three sizes, with benchmark.js.
//
// The loop runs natively (addon.CoreBench): a JS call per packet would
// measure the N-API boundary, not the core. One benchmark.js op is
// CoreBench.run(K), i.e. K batches of BATCH packets, with K picked so an op
// lasts tens to hundreds of microseconds, well above the timer's resolution
// and the call overhead. Everything is single-threaded: the figures are per
// core. Gbit/s counts the inner packet bytes (what a pod sent), not the
// encapsulation.
import Benchmark from 'benchmark';

import { addon, type WireFormat } from '../src/native';
import { textTable } from './table';

/** Packets per batch, as the engine reads and sends them (EngineConfig.batch). */
export const MICRO_BATCH = 64;
export const MICRO_SIZES = [64, 512, 1400] as const;
export const MICRO_FORMATS: WireFormat[] = ['vxlan', 'udp'];
export const MICRO_OPS = ['encap', 'decap'] as const;

export interface MicroResult {
  name: string;
  op: 'encap' | 'decap';
  format: WireFormat;
  size: number;
  batch: number;
  /** CoreBench.run(K) per benchmark.js op. */
  k: number;
  opsPerSec: number;
  /** Relative margin of error of opsPerSec, percent. */
  rmePct: number;
  samples: number;
  mpps: number;
  gbps: number;
}

// Batches per op. A batch costs ~0.5-1 µs at any size (the core writes
// headers into headroom and never touches the payload), so an op lasts
// ~40-200 µs: far above the timer's resolution and the call's cost.
function itersPerOp(size: number): number {
  return size <= 64 ? 256 : size <= 512 ? 128 : 64;
}

export interface MicroOptions {
  /** Seconds per benchmark (benchmark.js maxTime). */
  maxTime?: number;
  log?: (line: string) => void;
}

export function runMicro(opts: MicroOptions = {}): Promise<MicroResult[]> {
  const maxTime = opts.maxTime ?? 1.0;
  const log = opts.log ?? (() => undefined);
  const suite = new Benchmark.Suite('weft core');
  const meta = new Map<string, { op: 'encap' | 'decap'; format: WireFormat; size: number; k: number }>();
  let sink = 0;
  for (const op of MICRO_OPS) {
    for (const format of MICRO_FORMATS) {
      for (const size of MICRO_SIZES) {
        const core = new addon.CoreBench(op, format, size, MICRO_BATCH);
        const k = itersPerOp(size);
        // Fail loudly before timing if the core rejects the synthetic packets:
        // a benchmark of the drop path would look impressively fast.
        const passed = core.run(1);
        if (passed !== MICRO_BATCH) throw new Error(`${op} ${format} ${size} B: only ${passed}/${MICRO_BATCH} packets passed`);
        const name = `${op} ${format} ${size} B`;
        meta.set(name, { op, format, size, k });
        suite.add(
          name,
          () => {
            sink += core.run(k);
          },
          { maxTime, minSamples: 8, delay: 0.001 },
        );
      }
    }
  }
  return new Promise((resolve, reject) => {
    const results: MicroResult[] = [];
    suite.on('cycle', (e) => {
      const t = e.target;
      if (t.error) return;
      const m = meta.get(t.name)!;
      const pps = t.hz * m.k * MICRO_BATCH;
      const r: MicroResult = {
        name: t.name,
        ...m,
        batch: MICRO_BATCH,
        opsPerSec: t.hz,
        rmePct: t.stats.rme,
        samples: t.stats.sample.length,
        mpps: pps / 1e6,
        gbps: (pps * m.size * 8) / 1e9,
      };
      results.push(r);
      log(`  ${t.name.padEnd(20)} ${r.mpps.toFixed(1).padStart(6)} Mpps ${r.gbps.toFixed(1).padStart(7)} Gbit/s  ±${r.rmePct.toFixed(1)}%  (${r.samples} samples)`);
    });
    suite.on('error', (e) => reject(e.target.error ?? new Error(`benchmark ${e.target.name} failed`)));
    suite.on('complete', () => {
      if (sink < 0) log('unreachable'); // keeps `sink` observable
      resolve(results);
    });
    suite.run({ async: true });
  });
}

export function formatMicroTable(results: MicroResult[]): string {
  const head = ['op', 'format', 'size', 'Mpps/core', 'Gbit/s/core', '±%'];
  const rows = results.map((r) => [r.op, r.format, `${r.size} B`, r.mpps.toFixed(1), r.gbps.toFixed(1), r.rmePct.toFixed(1)]);
  return textTable(head, rows);
}

export function markdownMicro(results: MicroResult[]): string {
  const rows = results.map((r) => `| ${r.op} | ${r.format} | ${r.size} B | ${r.mpps.toFixed(1)} | ${r.gbps.toFixed(1)} | ±${r.rmePct.toFixed(1)} % |`);
  return ['| op | format | size | Mpps/core | Gbit/s/core | rme |', '|---|---|---:|---:|---:|---:|', ...rows].join('\n');
}

if (require.main === module) {
  const t0 = Date.now();
  runMicro({ log: (l) => console.log(l) })
    .then((r) => {
      console.log(`\n${formatMicroTable(r)}\n\n${((Date.now() - t0) / 1000).toFixed(1)} s`);
    })
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
