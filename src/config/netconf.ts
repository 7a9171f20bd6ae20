// flannel's net-conf.json (pkg/subnet/config.go), IPv4 only.
//
// Three steps, in flannel's order, so a config with several mistakes
// reports the one flannel would report first:
//   1. parseNetConf  = ParseConfig: Go encoding/json into flannel's Config
//      (keys case-insensitive, unknown keys ignored, JSON null leaves a field
//      as it was, Backend kept raw apart from its Type).
//   2. checkNetConf  = CheckNetworkConfig: defaults and validation, with
//      flannel's messages word for word.
//   3. decodeBackend = the backend lookup and the backend's own options,
//      which flannel decodes only when it starts the backend.
// loadNetConf runs all three and returns the normalized config weft uses.
//
// Type errors reproduce Go's UnmarshalTypeError text ("json: cannot
// unmarshal string into Go struct field Config.SubnetLen of type uint"):
// it names the field, and it is what a flannel operator has seen before.
import { Address4, Address6 } from 'ip-address';

import { type Cidr4, cidrContains, formatCidr4, formatIp4, maskOf } from '../cidr';
import { DEFAULT_PORT, DEFAULT_VNI } from '../defaults';

/** flannel's Config after ParseConfig (Go zero values where a key is absent). */
export interface ParsedNetConf {
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  /** {ip: 0, prefixLen: 0} when absent: Go's zero IP4Net, which the check calls empty. */
  Network: Cidr4;
  /** 0 = unset (the check picks the default). */
  SubnetLen: number;
  /** 0 (0.0.0.0) = unset. */
  SubnetMin: number;
  SubnetMax: number;
  EnableNFTables: boolean;
  /** Backend.Type as written; "udp" when there is no Backend key. */
  BackendType: string;
  /** The Backend object, for the backend's own options ({} when absent or null). */
  Backend: Record<string, unknown>;
}

export type BackendConfig =
  | { Type: 'udp'; Port: number }
  /**
   * MTU: the underlay MTU to use instead of the interface's; absent = the interface's.
   * DirectRouting: peers on our L2 segment get a plain route instead of the tunnel.
   */
  | { Type: 'vxlan'; VNI: number; Port: number; MTU?: number; DirectRouting: boolean }
  | { Type: 'host-gw' };

export type BackendType = BackendConfig['Type'];

/** What the daemon runs with: checked, defaults filled in, IPv4 only. */
export interface NetConf {
  Network: Cidr4;
  /** Checked with defaults filled in; as written (0 = absent) where the subnet is a node's podCIDR (kube). */
  SubnetLen: number;
  SubnetMin: number;
  SubnetMax: number;
  EnableIPv4: true;
  EnableIPv6: false;
  /** Masquerade and forward rules through nftables instead of iptables. */
  EnableNFTables: boolean;
  Backend: BackendConfig;
}

// Backends flannel registers (pkg/backend/*) that weft does not run: these get
// "not supported by weft" rather than flannel's "unknown backend type", since
// the operator asked for something real.
const FLANNEL_ONLY_BACKENDS = new Set(['ipip', 'ipsec', 'wireguard', 'alloc', 'extension', 'tencent-vpc']);

// ---- Go encoding/json, the parts flannel's structs need ----------------

type GoType = 'bool' | 'uint' | 'int' | 'string';

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  return typeof v; // 'string' | 'number' | 'object'
}

function typeError(v: unknown, field: string, goType: string): Error {
  let what = jsonKind(v);
  // Go quotes the number only when the number itself is the problem.
  if (what === 'number' && (goType === 'int' || goType === 'uint')) what = `number ${String(v)}`;
  return new Error(`json: cannot unmarshal ${what} into Go struct field ${field} of type ${goType}`);
}

function decodeScalar(v: unknown, field: string, t: GoType): unknown {
  switch (t) {
    case 'bool':
      if (typeof v === 'boolean') return v;
      break;
    case 'string':
      if (typeof v === 'string') return v;
      break;
    case 'int':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
      break;
    case 'uint':
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
      break;
  }
  return typeError(v, field, t);
}

/**
 * The JSON keys of `obj` matched to `fields` as Go does: exact name or
 * case-insensitive, unknown keys skipped. Later keys win (JSON.parse already
 * folds exact duplicates, keeping the last value).
 */
function matchFields<F extends string>(obj: Record<string, unknown>, fields: readonly F[]): Map<F, unknown> {
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f] as const));
  const out = new Map<F, unknown>();
  for (const [key, value] of Object.entries(obj)) {
    const f = byLower.get(key.toLowerCase());
    if (f !== undefined) out.set(f, value);
  }
  return out;
}

/** Decodes plain fields into `into`; null leaves a field as it was (Go). */
function decodeStruct<T extends Record<string, unknown>>(
  obj: Record<string, unknown>,
  types: Record<keyof T & string, GoType>,
  structName: string,
  into: T,
): T {
  for (const [f, v] of matchFields(obj, Object.keys(types) as (keyof T & string)[])) {
    if (v === null) continue;
    const r = decodeScalar(v, `${structName}.${f}`, types[f]);
    if (r instanceof Error) throw r;
    (into as Record<string, unknown>)[f] = r;
  }
  return into;
}

/** What flannel's UnmarshalJSON sees: the raw JSON with surrounding quotes trimmed. */
function unmarshalerText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// flannel's ip.IP4Net.UnmarshalJSON: net.ParseCIDR (which masks host bits), then IPv4 only.
function parseNetwork(text: string): Cidr4 {
  if (text.includes(':') && Address6.isValid(text) && text.includes('/')) throw new Error('invalid IPv4 CIDR format');
  if (!/^[0-9.]+\/\d{1,2}$/.test(text) || !Address4.isValid(text)) throw new Error(`invalid CIDR address: ${text}`);
  const a = new Address4(text);
  return { ip: Number(a.startAddress().bigInt()), prefixLen: a.subnetMask };
}

// flannel's ip.ParseIP4 (net.ParseIP, then IPv4 only).
function parseIp(text: string): number {
  if (!text.includes('/')) {
    if (/^[0-9.]+$/.test(text) && Address4.isValid(text)) return Number(new Address4(text).bigInt());
    if (Address6.isValid(text)) throw new Error('invalid IPv4 address format');
  }
  throw new Error('invalid IP address format');
}

// ---- 1. ParseConfig ------------------------------------------------------

const CONFIG_FIELDS = ['EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Network', 'SubnetMin', 'SubnetMax', 'SubnetLen', 'Backend'] as const;

/**
 * flannel's ParseConfig. IPv6 fields (IPv6Network, IPv6SubnetLen, ...) and
 * Networks are ignored, not type-checked: weft is IPv4-only, and a config
 * with EnableIPv6 true is refused by checkNetConf anyway.
 */
export function parseNetConf(text: string): ParsedNetConf {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`net-conf is not valid JSON: ${(e as Error).message}`);
  }
  // flannel turns IPv4 on before decoding, so the file can only turn it off.
  const cfg: ParsedNetConf = {
    EnableIPv4: true,
    EnableIPv6: false,
    Network: { ip: 0, prefixLen: 0 },
    SubnetLen: 0,
    SubnetMin: 0,
    SubnetMax: 0,
    EnableNFTables: false,
    BackendType: 'udp',
    Backend: {},
  };
  if (doc === null) return cfg; // Go: decoding null into a struct changes nothing
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error(`json: cannot unmarshal ${jsonKind(doc)} into Go value of type subnet.Config`);
  }

  let backend: unknown; // undefined = no Backend key (Go: empty RawMessage)
  for (const [f, v] of matchFields(doc as Record<string, unknown>, CONFIG_FIELDS)) {
    const field = `Config.${f}`;
    switch (f) {
      case 'EnableIPv4':
      case 'EnableIPv6':
      case 'EnableNFTables': {
        if (v === null) break;
        const r = decodeScalar(v, field, 'bool');
        if (r instanceof Error) throw r;
        cfg[f] = r as boolean;
        break;
      }
      case 'SubnetLen': {
        if (v === null) break;
        const r = decodeScalar(v, field, 'uint');
        if (r instanceof Error) throw r;
        cfg.SubnetLen = r as number;
        break;
      }
      // Custom unmarshalers in flannel: they see null too, as the text "null".
      case 'Network':
        cfg.Network = parseNetwork(unmarshalerText(v));
        break;
      case 'SubnetMin':
      case 'SubnetMax':
        cfg[f] = parseIp(unmarshalerText(v));
        break;
      case 'Backend':
        backend = v;
        break;
    }
  }

  if (backend !== undefined) {
    // flannel's parseBackendType: decode {Type string} from the raw Backend.
    if (backend !== null && (typeof backend !== 'object' || Array.isArray(backend))) {
      throw new Error(
        `error decoding Backend property of config: json: cannot unmarshal ${jsonKind(backend)} into Go value of type struct { Type string }`,
      );
    }
    const raw = (backend ?? {}) as Record<string, unknown>;
    let type = '';
    const t = matchFields(raw, ['Type'] as const).get('Type');
    if (t !== undefined && t !== null) {
      if (typeof t !== 'string') {
        throw new Error(`error decoding Backend property of config: json: cannot unmarshal ${jsonKind(t)} into Go struct field .Type of type string`);
      }
      type = t;
    }
    cfg.BackendType = type;
    cfg.Backend = raw;
  }
  return cfg;
}

// ---- 2. CheckNetworkConfig ----------------------------------------------

/** flannel's CheckNetworkConfig: returns a copy with the defaults filled in. */
export function checkNetConf(input: ParsedNetConf): ParsedNetConf {
  const cfg = { ...input };
  if (cfg.EnableIPv4) {
    const net = cfg.Network;
    // Go's IP4Net.Empty(): 0.0.0.0/0 counts as "not given" too.
    if (net.ip === 0 && net.prefixLen === 0) throw new Error('please define a correct Network parameter in the flannel config');
    if (cfg.SubnetLen > 0) {
      if (cfg.SubnetLen > 30) throw new Error('SubnetLen must be less than /31');
      if (cfg.SubnetLen < net.prefixLen + 2) throw new Error('network must be able to accommodate at least four subnets');
    } else if (net.prefixLen > 28) {
      throw new Error('network is too small. Minimum useful network prefix is /28');
    } else {
      cfg.SubnetLen = net.prefixLen <= 22 ? 24 : net.prefixLen + 2;
    }

    const subnetSize = 2 ** (32 - cfg.SubnetLen);
    // The first subnet is skipped: its .0 would be the Network's own address.
    if (cfg.SubnetMin === 0) cfg.SubnetMin = net.ip + subnetSize;
    else if (!cidrContains(net, cfg.SubnetMin)) throw new Error('SubnetMin is not in the range of the Network');
    // Network.Next() - subnetSize; Go's uint32 wrap-around cancels out, so plain arithmetic is exact.
    if (cfg.SubnetMax === 0) cfg.SubnetMax = net.ip + 2 ** (32 - net.prefixLen) - subnetSize;
    else if (!cidrContains(net, cfg.SubnetMax)) throw new Error('SubnetMax is not in the range of the Network');

    const mask = maskOf(cfg.SubnetLen);
    if ((cfg.SubnetMin & mask) >>> 0 !== cfg.SubnetMin) {
      throw new Error(`SubnetMin is not on a SubnetLen boundary: ${formatIp4(cfg.SubnetMin)}`);
    }
    if ((cfg.SubnetMax & mask) >>> 0 !== cfg.SubnetMax) {
      throw new Error(`SubnetMax is not on a SubnetLen boundary: ${formatIp4(cfg.SubnetMax)}`);
    }
    // flannel has no SubnetMin <= SubnetMax check; an inverted range just yields "out of subnets".
  }
  // Where flannel would go on to check the IPv6 half: weft has none yet.
  checkIpv4Only(cfg);
  return cfg;
}

function checkIpv4Only(cfg: ParsedNetConf): void {
  if (cfg.EnableIPv6) throw new Error('IPv6 is not supported by weft yet: set EnableIPv6 to false (weft runs IPv4 networks only)');
  if (!cfg.EnableIPv4) throw new Error('EnableIPv4 is false, but weft runs IPv4 networks only');
}

/**
 * What the kube subnet manager checks: flannel runs ParseConfig only there
 * (the subnet is the node's podCIDR, so SubnetLen, SubnetMin and SubnetMax
 * mean nothing and are not checked). An empty Network, which flannel would
 * report only when it compares the podCIDR with it, is refused up front in
 * CheckNetworkConfig's words; weft's IPv4-only limit applies as everywhere.
 */
function checkParsedOnly(cfg: ParsedNetConf): ParsedNetConf {
  if (cfg.EnableIPv4 && cfg.Network.ip === 0 && cfg.Network.prefixLen === 0) {
    throw new Error('please define a correct Network parameter in the flannel config');
  }
  checkIpv4Only(cfg);
  return cfg;
}

// ---- 3. the backend ------------------------------------------------------

function intInRange(name: string, v: number, min: number, max: number, prefix: string): void {
  if (v < min || v > max) throw new Error(`${prefix}${name} must be between ${min} and ${max}, got ${v}`);
}

// The backend's options are decoded into an anonymous Go struct: fields are ".VNI".
function decodeBackendStruct<T extends Record<string, unknown>>(
  prefix: string,
  raw: Record<string, unknown>,
  types: Record<keyof T & string, GoType>,
  defaults: T,
): T {
  try {
    return decodeStruct(raw, types, '', defaults);
  } catch (e) {
    throw new Error(prefix + (e as Error).message);
  }
}

/**
 * flannel's backend lookup (by lowercased Type, as GetBackend does) and the
 * backend's options. Errors carry flannel's prefixes ("error decoding VXLAN
 * backend config: ") and name the field.
 */
export function decodeBackend(backendType: string, raw: Record<string, unknown>): BackendConfig {
  const type = backendType.toLowerCase();
  if (type === 'udp') {
    const prefix = 'error decoding UDP backend config: ';
    const o = decodeBackendStruct(prefix, raw, { Port: 'int' }, { Port: DEFAULT_PORT.udp });
    intInRange('Port', o.Port, 1, 65535, prefix);
    return { Type: 'udp', Port: o.Port };
  }
  if (type === 'vxlan') {
    const prefix = 'error decoding VXLAN backend config: ';
    const o = decodeBackendStruct(
      prefix,
      raw,
      { VNI: 'int', Port: 'int', MTU: 'int', GBP: 'bool', Learning: 'bool', DirectRouting: 'bool' },
      { VNI: DEFAULT_VNI, Port: 0, MTU: 0, GBP: false, Learning: false, DirectRouting: false },
    );
    // GBP marks frames with a group policy ID and Learning lets the kernel
    // learn MACs from traffic: both are features of the kernel's vxlan device
    // that weft's engine does not have.
    if (o.GBP) throw new Error('vxlan backend: GBP (group based policy) is not supported by weft; remove it or set it to false');
    if (o.Learning) throw new Error('vxlan backend: Learning is not supported by weft (peers come from leases only); remove it or set it to false');
    intInRange('VNI', o.VNI, 1, 0xffffff, prefix);
    intInRange('Port', o.Port, 0, 65535, prefix);
    // Port 0 means Linux's vxlan default (8472), not IANA's 4789.
    const out: BackendConfig = { Type: 'vxlan', VNI: o.VNI, Port: o.Port || DEFAULT_PORT.vxlan, DirectRouting: o.DirectRouting };
    // MTU 0 means "not given", like Port 0: the interface's MTU is used. The
    // daemon checks it against the interface (it may not exceed it).
    if (o.MTU !== 0) {
      intInRange('MTU', o.MTU, 576, 65535, prefix);
      out.MTU = o.MTU;
    }
    return out;
  }
  if (type === 'host-gw') return { Type: 'host-gw' }; // flannel's host-gw has no options
  if (FLANNEL_ONLY_BACKENDS.has(type)) {
    throw new Error(`backend type "${type}" is not supported by weft: weft supports udp, vxlan and host-gw`);
  }
  throw new Error(`unknown backend type: ${type}`);
}

// ---- all three -------------------------------------------------------------

export interface LoadNetConfOptions {
  /**
   * false: flannel's kube subnet manager reading (ParseConfig only, no
   * CheckNetworkConfig; SubnetLen, SubnetMin and SubnetMax stay as written,
   * 0 when absent, and nothing uses them). Default true.
   */
  checkSubnets?: boolean;
}

export function loadNetConf(text: string, o: LoadNetConfOptions = {}): NetConf {
  const parsed = parseNetConf(text);
  const cfg = o.checkSubnets === false ? checkParsedOnly(parsed) : checkNetConf(parsed);
  return {
    Network: cfg.Network,
    SubnetLen: cfg.SubnetLen,
    SubnetMin: cfg.SubnetMin,
    SubnetMax: cfg.SubnetMax,
    EnableIPv4: true,
    EnableIPv6: false,
    EnableNFTables: cfg.EnableNFTables,
    Backend: decodeBackend(cfg.BackendType, cfg.Backend),
  };
}

/** The normalized config as JSON, addresses as strings (`weft config check`). */
export function netConfToJSON(cfg: NetConf): string {
  return JSON.stringify(
    {
      Network: formatCidr4(cfg.Network),
      SubnetLen: cfg.SubnetLen,
      SubnetMin: formatIp4(cfg.SubnetMin),
      SubnetMax: formatIp4(cfg.SubnetMax),
      EnableIPv4: cfg.EnableIPv4,
      EnableIPv6: cfg.EnableIPv6,
      EnableNFTables: cfg.EnableNFTables,
      Backend: cfg.Backend,
    },
    null,
    2,
  );
}
