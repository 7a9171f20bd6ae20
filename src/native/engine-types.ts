// Types of the addon's engine surface (native/napi/engine_binding.cc).

export type WireFormat = 'udp' | 'vxlan';

export interface NativeEngineOptions {
  format: WireFormat;
  tunName: string;
  mtu: number;
  localIp: string;
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
}

// One FIB entry: the peer that owns prefix/prefixLen.
export interface NativePeer {
  prefix: string;
  prefixLen: number;
  publicIp: string;
  port: number;
  vtepMac?: string;
}

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
  /** Starts the threads; `subnet` (our lease) is the only inner destination taken from the overlay. */
  start(subnet: { prefix: string; prefixLen: number }): void;
  stop(): void;
  close(): void;
  setPeers(peers: NativePeer[]): void;
  updatePeers(upserts: NativePeer[], removals: Array<Pick<NativePeer, 'prefix' | 'prefixLen'>>): void;
  peers(): Required<NativePeer>[];
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
  segment(packet: Uint8Array, vnet: { gsoType: number; gsoSize: number }, lead?: number): { verdict: CounterName; segments: Buffer[]; stride: number };
  completeChecksum(packet: Uint8Array, csumStart: number, csumOffset: number): Buffer | null;
  /** With maxInner, a packet longer than it is taken as a TCP super-packet (Coalescer::add_super). */
  coalesce(packets: Uint8Array[], maxInner?: number): Array<{ vnet: VnetHeader; packet: Buffer; segments: number; bytes: number }>;
  readonly GSO_TCPV4: number;
  readonly GSO_UDP_L4: number;
}

/**
 * Native microbenchmark of encap/decap: run(n) processes n * batch packets, returns how many passed.
 * 'rx' is decap plus the inner-address check, 'rx-strict' with the source check too.
 */
export interface NativeCoreBench {
  run(iterations: number): number;
}
export type NativeCoreBenchClass = new (op: 'encap' | 'decap' | 'rx' | 'rx-strict', format: WireFormat, size: number, batch: number) => NativeCoreBench;

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
  readonly overhead: Record<WireFormat, number>;
}
