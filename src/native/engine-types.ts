// Types of the addon's engine surface (native/napi/engine_binding.cc).

export type WireFormat = 'udp' | 'vxlan';

export interface NativeEngineOptions {
  format: WireFormat;
  tunName: string;
  mtu: number;
  /** Host order. */
  localIp: number;
  port: number;
  vni?: number;
  vtepMac?: string;
  batch?: number;
  socketBuffer?: number;
  /** TUN TSO/checksum offload, UDP_SEGMENT and UDP_GRO; default true. */
  offload?: boolean;
  /** Skip the "sender is a peer" check (flannel's permissive behaviour); default false. */
  allowAnySource?: boolean;
  /**
   * Also require an inner source inside the subnet of the peer whose public
   * IP sent the datagram; default false. Refused with allowAnySource.
   */
  strictSource?: boolean;
  /**
   * Speed options (see native/core/engine.h); the defaults are the fast
   * ones, the bench turns each back to show what it buys.
   * batchBytes: a drain holds at most this many bytes (0: no cap).
   * zeroCopy: segments sent as header + iovec into the TUN buffer.
   * sendRuns: same-size datagrams to one peer sent as one UDP_SEGMENT message.
   * threads: 1 serves both directions from one loop, 2 is a thread each, 0 picks by CPUs.
   * busyPollUs: keep polling this long after the last packet before sleeping.
   * tunQueue: the TUN's transmit queue in packets (0: the kernel's 500).
   */
  batchBytes?: number;
  zeroCopy?: boolean;
  sendRuns?: boolean;
  threads?: 0 | 1 | 2;
  busyPollUs?: number;
  tunQueue?: number;
}

/**
 * The peer table across the boundary: FIB_WORDS numbers per entry in a
 * Uint32Array (native/napi/engine_binding.cc): prefix and public IP in host
 * order, the prefix length, and the VtepMAC as its first two bytes and its
 * last four, each big-endian. Removals are [prefix, prefixLen] pairs.
 */
export const FIB_WORDS = 5;

export interface CounterValue {
  packets: number;
  bytes: number;
}

/** The engine's counters, in the addon's order (native/core/counters.h; a unit test compares them). */
export const COUNTER_NAMES = [
  'tx_packets',
  'tx_drop_not_ipv4',
  'tx_drop_bad_ipv4',
  'tx_drop_no_route',
  'tx_drop_ttl',
  'tx_drop_bad_gso',
  'tx_drop_send_error',
  'tx_drop_loop',
  'tx_gso_fallback',
  'rx_packets',
  'rx_drop_unknown_peer',
  'rx_drop_truncated',
  'rx_drop_oversized',
  'rx_drop_bad_vxlan_flags',
  'rx_drop_wrong_vni',
  'rx_drop_wrong_mac',
  'rx_drop_bad_ethertype',
  'rx_drop_not_ipv4',
  'rx_drop_bad_ihl',
  'rx_drop_bad_length',
  'rx_drop_inner_dst',
  'rx_drop_inner_src',
  'rx_csum_partial',
  'rx_drop_tun_write_error',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];

export interface NativeStats {
  counters: Record<CounterName, CounterValue>;
  running: boolean;
  fatalError: string | null;
}

export interface NativeEngine {
  readonly tunName: string;
  /** Starts the threads; `subnet` (our lease, host order) is the only inner destination taken from the overlay. */
  start(subnet: { prefix: number; prefixLen: number }): void;
  stop(): void;
  close(): void;
  /** FIB_WORDS per peer; every peer gets the engine's port. */
  setPeers(peers: Uint32Array): void;
  updatePeers(upserts: Uint32Array, removals: Uint32Array): void;
  peers(): Uint32Array;
  stats(): NativeStats;
}

export type NativeEngineClass = new (opts: NativeEngineOptions) => NativeEngine;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** The pure offload functions (native/core/offload.h), for tests. */
export interface NativeOffload {
  /** headersOnly: the engine's zero-copy layout, each segment joined from its header block and payload iovec. */
  segment(
    packet: Uint8Array,
    vnet: { gsoType: number; gsoSize: number },
    lead?: number,
    headersOnly?: boolean,
  ): { verdict: CounterName; segments: Buffer[]; stride: number };
  completeChecksum(packet: Uint8Array, csumStart: number, csumOffset: number): Buffer | null;
  /** With maxInner, a packet longer than it is taken as a TCP super-packet (Coalescer::add_super). */
  coalesce(packets: Uint8Array[], maxInner?: number): Array<{ vnet: VnetHeader; packet: Buffer; segments: number; bytes: number }>;
  /** The Internet checksum of bytes (the value a checksum field holds); null: no such implementation on this CPU. */
  checksum(bytes: Uint8Array, impl?: 'auto' | 'portable' | 'avx2'): number | null;
  /** What 'auto' picked on this CPU. */
  readonly checksumImpl: 'portable' | 'avx2';
  readonly GSO_TCPV4: number;
  readonly GSO_UDP_L4: number;
}

/** The core microbenchmarks (native/bench/core_bench.h): what `op` runs and what `size` means are described there. */
export type CoreBenchOp = 'encap' | 'decap' | 'rx' | 'rx-strict' | 'csum-portable' | 'csum-avx2' | 'segment-copy' | 'segment-headers';

/** run(n) processes n * batch items, returns how many passed. */
export interface NativeCoreBench {
  run(iterations: number): number;
}
export type NativeCoreBenchClass = new (op: CoreBenchOp, format: WireFormat, size: number, batch: number) => NativeCoreBench;

export interface DecapOptions {
  vni?: number;
  vtepMac?: string;
  maxInner?: number;
}

export interface NativeEncap {
  decap(
    format: WireFormat,
    payload: Uint8Array,
    opts: DecapOptions,
  ): { verdict: CounterName; innerOffset: number; innerLength: number; superPacket: boolean };
  encap(
    format: WireFormat,
    inner: Uint8Array,
    opts: { vni?: number; vtepMac?: string },
    peerMac?: string,
  ): { verdict: CounterName; payload?: Buffer };
  readonly counterNames: CounterName[];
  /** FIB_WORDS as the addon has it (a unit test compares them). */
  readonly fibWords: number;
  readonly overhead: Record<WireFormat, number>;
}
