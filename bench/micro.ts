// Microbenchmarks of the packet core with benchmark.js: encap and decap of
// one batch of packets (both wire formats, three sizes), the checksum (each
// implementation) and the segmentation of a 64 KB super-packet (copied or
// header-only), so the core's share of a change shows next to its effect
// end to end.
//
// The loop runs natively (addon.CoreBench, native/bench/core_bench.h): a JS
// call per packet would measure the N-API boundary, not the core. One
// benchmark.js op is CoreBench.run(K), i.e. K batches, with K picked so an
// op lasts tens to hundreds of microseconds, well above the timer's
// resolution and the call overhead. Everything is single-threaded: the
// figures are per core. Gbit/s counts the bytes each op is about: the
// inner packets, the summed bytes, the super-packet's payload.
import Benchmark from 'benchmark';

import { addon, type CoreBenchOp, type WireFormat } from '../src/native';
import { textTable } from './table';

/** Packets per batch, as the engine reads and sends them (EngineConfig.batch). */
export const MICRO_BATCH = 64;
/** The payload of the super-packet the segment ops cut (native/bench/core_bench.cc). */
const SUPER_PAYLOAD = 65535 - 40;

interface MicroCase {
  op: CoreBenchOp;
  format: WireFormat;
  /** Packet size; the checksummed length (csum); the MSS (segment). */
  size: number;
  batch: number;
  /** CoreBench.run(k) per benchmark.js op. */
  k: number;
  /** Bytes one item stands for, for Gbit/s. */
  bytes: number;
}

function cases(): MicroCase[] {
  const out: MicroCase[] = [];
  for (const op of ['encap', 'decap'] as const) {
    for (const format of ['vxlan', 'udp'] as const) {
      for (const size of [64, 512, 1400]) {
        // A batch costs ~0.5-1 µs at any size (headers only), so an op lasts ~40-200 µs.
        out.push({ op, format, size, batch: MICRO_BATCH, k: size <= 64 ? 256 : size <= 512 ? 128 : 64, bytes: size });
      }
    }
  }
  const csum: CoreBenchOp[] = ['csum-portable', ...(avx2() ? (['csum-avx2'] as const) : [])];
  for (const op of csum) for (const size of [1448, 8192]) out.push({ op, format: 'vxlan', size, batch: MICRO_BATCH, k: size > 2000 ? 4 : 16, bytes: size });
  for (const op of ['segment-copy', 'segment-headers'] as const) out.push({ op, format: 'vxlan', size: 1398, batch: 1, k: 16, bytes: SUPER_PAYLOAD });
  return out;
}

function avx2(): boolean {
  try {
    new addon.CoreBench('csum-avx2', 'vxlan', 64, 1);
    return true;
  } catch {
    return false;
  }
}

export interface MicroResult {
  name: string;
  op: CoreBenchOp;
  format: WireFormat;
  size: number;
  batch: number;
  k: number;
  opsPerSec: number;
  /** Relative margin of error of opsPerSec, percent. */
  rmePct: number;
  samples: number;
  /** Items (packets, checksums, super-packets) per second, millions. */
  mpps: number;
  gbps: number;
}

export interface MicroOptions {
  /** Seconds per benchmark (benchmark.js maxTime). */
  maxTime?: number;
  log?: (line: string) => void;
}

function nameOf(c: MicroCase): string {
  if (c.op.startsWith('csum')) return `${c.op} ${c.size} B`;
  if (c.op.startsWith('segment')) return `${c.op} 64 KB @${c.size}`;
  return `${c.op} ${c.format} ${c.size} B`;
}

export function runMicro(opts: MicroOptions = {}): Promise<MicroResult[]> {
  const maxTime = opts.maxTime ?? 1.0;
  const log = opts.log ?? (() => undefined);
  const suite = new Benchmark.Suite('weft core');
  const meta = new Map<string, MicroCase>();
  let sink = 0;
  for (const c of cases()) {
    const core = new addon.CoreBench(c.op, c.format, c.size, c.batch);
    // Fail loudly before timing if the core rejects the synthetic input:
    // a benchmark of the drop path would look impressively fast.
    const passed = core.run(1);
    if (passed !== c.batch) throw new Error(`${nameOf(c)}: only ${passed}/${c.batch} items passed`);
    const name = nameOf(c);
    meta.set(name, c);
    suite.add(
      name,
      () => {
        sink += core.run(c.k);
      },
      { maxTime, minSamples: 8, delay: 0.001 },
    );
  }
  return new Promise((resolve, reject) => {
    const results: MicroResult[] = [];
    suite.on('cycle', (e) => {
      const t = e.target;
      if (t.error) return;
      const m = meta.get(t.name)!;
      const pps = t.hz * m.k * m.batch;
      const r: MicroResult = {
        name: t.name,
        op: m.op,
        format: m.format,
        size: m.size,
        batch: m.batch,
        k: m.k,
        opsPerSec: t.hz,
        rmePct: t.stats.rme,
        samples: t.stats.sample.length,
        mpps: pps / 1e6,
        gbps: (pps * m.bytes * 8) / 1e9,
      };
      results.push(r);
      log(`  ${t.name.padEnd(28)} ${r.mpps.toFixed(2).padStart(8)} M/s ${r.gbps.toFixed(1).padStart(7)} Gbit/s  ±${r.rmePct.toFixed(1)}%  (${r.samples} samples)`);
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
  const head = ['benchmark', 'M/s per core', 'Gbit/s per core', '±%'];
  const rows = results.map((r) => [r.name, r.mpps.toFixed(2), r.gbps.toFixed(1), r.rmePct.toFixed(1)]);
  return textTable(head, rows);
}

export function markdownMicro(results: MicroResult[]): string {
  const rows = results.map((r) => `| ${r.name} | ${r.mpps.toFixed(2)} | ${r.gbps.toFixed(1)} | ±${r.rmePct.toFixed(1)} % |`);
  return ['| benchmark | M/s per core | Gbit/s per core | rme |', '|---|---:|---:|---:|', ...rows].join('\n');
}
