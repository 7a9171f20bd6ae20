// Pods wired the way a Kubernetes node with kube-flannel wires them. The
// runtime (containerd through libcni) runs the conflist kube-flannel installs;
// its first plugin is flannel's CNI plugin, which reads subnet.env, builds a
// delegate config, saves it for DEL and hands it to the bridge plugin
// (docs/flanneld-parity.md §6). flannel's plugin is not packaged in Debian, so its
// part runs here, in-process, following its source (flannel-io/cni-plugin
// flannel.go, flannel_linux.go); everything else is the real binaries from
// Debian's containernetworking-plugins, driven by the CNI protocol: config on
// stdin, CNI_* in the environment, run in the node's namespace (the
// runtime's host), results chained as prevResult.
//
// The delegate's bytes are what a conformance test compares, so they come
// from Go's json.Marshal as lab/go-compat.ts reproduces it, and the subnet
// file is read by flannel's rules, not weft's (src/subnet/env.ts is more
// lenient).
// The lab keeps its state out of /var/lib/cni through the keys flannel's
// plugin reads for that (`dataDir`, `subnetFile`, and the top-level `ipam`
// whose `dataDir` host-local honours), so kube-flannel's unmodified conflist
// still gives, byte for byte, the delegate a real node gets.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { formatGoIp, formatGoIpNet, goJson, goKind, goPathError, goQuote, GoStruct, parseGoCidr, parseGoIp } from './go-compat';
import type { Netns } from './netns';

export const CNI_BIN_DIR = '/usr/lib/cni';

export interface CniPluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface CniConflist {
  name: string;
  cniVersion?: string;
  plugins: CniPluginConf[];
}

/** kube-flannel's /etc/cni/net.d/10-flannel.conflist (its cni-conf.json), verbatim. */
export const KUBE_FLANNEL_CONFLIST: CniConflist = {
  name: 'cbr0',
  cniVersion: '0.3.1',
  plugins: [
    { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};

/** containerd's loopback network (go-cni WithLoNetwork), attached to lo before the pod network. */
export const LOOPBACK_CONFLIST: CniConflist = { cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };

/** flannel's defaults when its netconf names no subnetFile or dataDir. */
export const FLANNEL_SUBNET_FILE = '/run/flannel/subnet.env';
export const FLANNEL_DATA_DIR = '/var/lib/cni/flannel';

/**
 * kube-flannel's conflist with this lab's state under stateDir: flannel's
 * saved delegates in stateDir/flannel, host-local's leases in
 * stateDir/networks (one stateDir per node, as each node has its own
 * /var/lib/cni), subnet.env from subnetFile.
 */
export function labFlannelConflist(stateDir: string, subnetFile: string, base: CniConflist = KUBE_FLANNEL_CONFLIST): CniConflist {
  return {
    ...base,
    plugins: base.plugins.map((p) =>
      p.type === 'flannel'
        ? { ...p, subnetFile, dataDir: path.join(stateDir, 'flannel'), ipam: { ...(p.ipam as object), dataDir: path.join(stateDir, 'networks') } }
        : p,
    ),
  };
}

// ---------------------------------------------------------------------------
// flannel's CNI plugin.

/** What flannel's plugin reads from subnet.env (loadFlannelSubnetEnv). */
export interface FlannelSubnetEnv {
  networks: string[];
  subnet?: string;
  ip6Networks: string[];
  ip6Subnet?: string;
  mtu?: number;
  ipMasq?: boolean;
}

/**
 * flannel indexes the value of a known key unchecked, so a key line without
 * "=" crashes its plugin: the runtime gets no error JSON, only the panic on
 * stderr (libcni then reports code 0, "netplugin failed: ...").
 */
class FlannelPanic extends Error {}

// bufio.Scanner's default limit: a longer line stops the scan with an error.
const MAX_LINE = 64 * 1024;

/**
 * flannel's loadFlannelSubnetEnv on a file's text: lines split on "=" once,
 * exact keys, no trimming (only a CR before the LF goes, as bufio.Scanner
 * drops it), FLANNEL_IPMASQ true only for exactly "true", comma lists of
 * networks de-duplicated. Throws with the plugin's own error texts.
 */
export function parseFlannelSubnetEnv(text: string, file: string): FlannelSubnetEnv {
  const env: FlannelSubnetEnv = { networks: [], ip6Networks: [] };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const cidr = (s: string): string => {
    const n = parseGoCidr(s, true);
    if (!n) throw new Error(`invalid CIDR address: ${s}`);
    return formatGoIpNet(n);
  };
  const cidrList = (s: string): string[] => [...new Set(s.split(',').map(cidr))];
  for (const raw of lines) {
    if (Buffer.byteLength(raw) >= MAX_LINE) throw new Error('bufio.Scanner: token too long');
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const eq = line.indexOf('=');
    const [key, value] = eq < 0 ? [line, undefined] : [line.slice(0, eq), line.slice(eq + 1)];
    const known = ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'];
    if (!known.includes(key)) continue;
    if (value === undefined) throw new FlannelPanic(`${file}: ${key} without "="`);
    switch (key) {
      case 'FLANNEL_NETWORK':
        env.networks = cidrList(value);
        break;
      case 'FLANNEL_SUBNET':
        env.subnet = cidr(value);
        break;
      case 'FLANNEL_IPV6_NETWORK':
        env.ip6Networks = cidrList(value);
        break;
      case 'FLANNEL_IPV6_SUBNET':
        env.ip6Subnet = cidr(value);
        break;
      case 'FLANNEL_MTU':
        // strconv.ParseUint(v, 10, 32)
        if (!/^[0-9]+$/.test(value)) throw new Error(`strconv.ParseUint: parsing ${goQuote(value)}: invalid syntax`);
        if (BigInt(value) > 0xffffffffn) throw new Error(`strconv.ParseUint: parsing ${goQuote(value)}: value out of range`);
        env.mtu = Number(value);
        break;
      case 'FLANNEL_IPMASQ':
        env.ipMasq = value === 'true';
        break;
    }
  }
  const missing = [
    ...(env.networks.length || env.ip6Networks.length ? [] : ['FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK']),
    ...(env.subnet || env.ip6Subnet ? [] : ['FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET']),
    ...(env.mtu === undefined ? ['FLANNEL_MTU'] : []),
    ...(env.ipMasq === undefined ? ['FLANNEL_IPMASQ'] : []),
  ];
  if (missing.length) throw new Error(`${file} is missing ${missing.join(', ')}`);
  return env;
}

/** The flannel plugin's netconf (its NetConf struct), decoded from what the runtime gave it. */
export interface FlannelNetConf {
  name: string;
  cniVersion: string;
  subnetFile: string;
  dataDir: string;
  ipam?: Record<string, unknown>;
  delegate?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
}

/** A CNI error result ({code, msg, details}) from a plugin, or from a plugin's part done here. */
export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly code: number,
    readonly msg: string,
    readonly details = '',
  ) {
    super(`CNI ${command} ${plugin}: error ${code}: ${msg}${details ? `; ${details}` : ''}`);
    this.name = 'CniError';
  }
}

// skel turns a plain Go error into CNI error 999 (ErrInternal).
const ERR_INTERNAL = 999;
const flannelError = (command: string, msg: string) => new CniError('flannel', command, ERR_INTERNAL, msg);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** loadFlannelNetConf: json.Unmarshal into flannel's NetConf, with its defaults. */
export function loadFlannelNetConf(stdin: Record<string, unknown>): FlannelNetConf {
  const field = <T>(key: string, goType: string, ok: (v: unknown) => boolean): T | undefined => {
    const v = stdin[key];
    if (v === null || v === undefined) return undefined;
    if (!ok(v)) throw new Error(`failed to load netconf: json: cannot unmarshal ${goKind(v)} into Go struct field NetConf.${key} of type ${goType}`);
    return v as T;
  };
  const str = (key: string) => field<string>(key, 'string', (v) => typeof v === 'string');
  const map = (key: string) => field<Record<string, unknown>>(key, 'map[string]interface {}', isObject);
  // Go reports the first bad field in the order of the text, which libcni wrote with sorted keys.
  const cniVersion = str('cniVersion') ?? '';
  const dataDir = str('dataDir') ?? FLANNEL_DATA_DIR;
  const delegate = map('delegate');
  const ipam = map('ipam');
  const name = str('name') ?? '';
  const runtimeConfig = map('runtimeConfig');
  const subnetFile = str('subnetFile') ?? FLANNEL_SUBNET_FILE;
  return { name, cniVersion, subnetFile, dataDir, ipam, delegate, runtimeConfig };
}

/** Wraps what loadFlannelSubnetEnv failed with as cmdAdd does. */
function subnetEnvError(err: string): string {
  return `failed to load flannel 'subnet.env' file: ${err}. Check the flannel pod log for this node.`;
}

/** A types.Route from the netconf's ipam.routes, decoded and re-marshalled as the CNI library does. */
function decodeRoute(v: unknown): GoStruct {
  if (v === null) v = {};
  if (!isObject(v)) throw new Error(`json: cannot unmarshal ${goKind(v)} into Go value of type types.route`);
  let dst = '<nil>'; // a zero IPNet prints so
  let gw: string | undefined;
  const ints: Record<string, number | undefined> = {};
  const fieldError = (x: unknown, name: string, type: string) =>
    new Error(`json: cannot unmarshal ${goKind(x)}${typeof x === 'number' && type === 'int' ? ` ${x}` : ''} into Go struct field route.${name} of type ${type}`);
  // Go matches JSON keys to struct fields case-insensitively; ASCII folding covers any real key.
  for (const [key, x] of Object.entries(v)) {
    const name = key.toLowerCase();
    if (name === 'dst') {
      if (x !== null && typeof x !== 'string') throw fieldError(x, 'dst', 'string');
      const n = parseGoCidr(x ?? '', false);
      if (!n) throw new Error(`invalid CIDR address: ${x ?? ''}`);
      dst = formatGoIpNet(n);
    } else if (name === 'gw') {
      if (x === null || x === '') gw = undefined;
      else if (typeof x !== 'string') throw new Error(`json: cannot unmarshal ${goKind(x)} into Go struct field route.gw of type net.IP`);
      else {
        const ip = parseGoIp(x);
        if (!ip) throw new Error(`invalid IP address: ${x}`);
        gw = formatGoIp(ip);
      }
    } else if (['mtu', 'advmss', 'priority', 'table', 'scope'].includes(name)) {
      if (x === null) ints[name] = undefined;
      else if (!Number.isSafeInteger(x)) throw fieldError(x, name, 'int');
      else ints[name] = x as number;
    }
  }
  const fields: [string, unknown][] = [['dst', dst]];
  if (gw !== undefined) fields.push(['gw', gw]);
  for (const name of ['mtu', 'advmss', 'priority']) if (ints[name]) fields.push([name, ints[name]]); // omitempty ints
  for (const name of ['table', 'scope']) if (ints[name] !== undefined) fields.push([name, ints[name]]); // omitempty *int
  return new GoStruct(fields);
}

/**
 * What flannel's cmdAdd hands its delegate (doCmdAdd, getDelegateIPAM), as
 * the bytes json.Marshal gives: name and cniVersion from the netconf; type
 * bridge, ipMasq = !FLANNEL_IPMASQ, mtu = FLANNEL_MTU and (for bridge)
 * isGateway true unless the delegate sets them; ipam from the netconf's
 * top-level ipam with host-local by default, ranges replaced by the subnet,
 * routes = its routes + one per network. Throws CniError 999 with flannel's texts.
 */
export function buildFlannelDelegate(nc: FlannelNetConf, subnetEnvText: string): string {
  let env: FlannelSubnetEnv;
  try {
    env = parseFlannelSubnetEnv(subnetEnvText, nc.subnetFile);
  } catch (e) {
    if (e instanceof FlannelPanic) throw new CniError('flannel', 'ADD', 0, `netplugin failed: panic: runtime error: index out of range [1] with length 1 (${e.message})`);
    throw flannelError('ADD', subnetEnvError((e as Error).message));
  }
  const d: Record<string, unknown> = { ...nc.delegate };
  if (Object.hasOwn(d, 'type') && typeof d.type !== 'string') throw flannelError('ADD', "'delegate' dictionary, if present, must have (string) 'type' field");
  if (Object.hasOwn(d, 'name')) throw flannelError('ADD', "'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  if (Object.hasOwn(d, 'ipam')) throw flannelError('ADD', "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  if (nc.runtimeConfig) d.runtimeConfig = nc.runtimeConfig;

  d.name = nc.name;
  if (!Object.hasOwn(d, 'type')) d.type = 'bridge';
  if (!Object.hasOwn(d, 'ipMasq')) d.ipMasq = !env.ipMasq; // flannel not masquerading: the bridge does
  if (!Object.hasOwn(d, 'mtu')) d.mtu = env.mtu;
  if (d.type === 'bridge' && !Object.hasOwn(d, 'isGateway')) d.isGateway = true;
  if (nc.cniVersion !== '') d.cniVersion = nc.cniVersion;

  const ipam: Record<string, unknown> = { ...nc.ipam };
  if (!Object.hasOwn(ipam, 'type')) ipam.type = 'host-local';
  ipam.ranges = [env.subnet, env.ip6Subnet].filter((s) => s !== undefined).map((subnet) => [{ subnet }]);
  let routes: GoStruct[];
  try {
    const given = ipam.routes ?? [];
    if (!Array.isArray(given)) throw new Error(`json: cannot unmarshal ${goKind(given)} into Go value of type []types.Route`);
    routes = given.map(decodeRoute);
  } catch (e) {
    throw flannelError('ADD', `failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: ${(e as Error).message}`);
  }
  ipam.routes = [...routes, ...[...env.networks, ...env.ip6Networks].map((dst) => new GoStruct([['dst', dst]]))];
  d.ipam = ipam;
  return goJson(d);
}

/**
 * What the runtime gives one plugin of a list on stdin (libcni
 * buildOneConfig): the plugin's entry with the list's name and cniVersion,
 * the previous plugin's result, and runtimeConfig for each capability the
 * entry declares and the runtime has arguments for.
 */
export function pluginStdin(list: CniConflist, plugin: CniPluginConf, prevResult?: unknown, capabilityArgs: Record<string, unknown> = {}): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion ?? '' };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  const runtimeConfig = Object.fromEntries(
    Object.entries(plugin.capabilities ?? {}).filter(([cap, on]) => on === true && Object.hasOwn(capabilityArgs, cap)).map(([cap]) => [cap, capabilityArgs[cap]]),
  );
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  return conf;
}

/** The bytes flannel's plugin in `conflist` would hand its delegate, given subnet.env's text. */
export function flannelDelegateFor(conflist: CniConflist, subnetEnvText: string, capabilityArgs: Record<string, unknown> = {}): string {
  const entry = conflist.plugins.find((p) => p.type === 'flannel');
  if (!entry) throw new Error(`conflist ${JSON.stringify(conflist.name)} has no flannel plugin`);
  let nc: FlannelNetConf;
  try {
    nc = loadFlannelNetConf(pluginStdin(conflist, entry, undefined, capabilityArgs));
  } catch (e) {
    throw flannelError('ADD', `failed to load flannel netconf file: ${(e as Error).message}`);
  }
  return buildFlannelDelegate(nc, subnetEnvText);
}

// ---------------------------------------------------------------------------
// The runtime side (libcni): a conflist run against one pod.

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface CniPod {
  /** CNI_CONTAINERID: letters, digits, then also "_", "." and "-" (libcni's rule). */
  containerId: string;
  /** The pod's namespace; CNI_NETNS is its path. */
  netns: Netns;
  /** CNI_IFNAME */
  ifName: string;
  /** CNI_ARGS, as "K=V;K=V" */
  args?: [string, string][];
  /** What the runtime gives plugins that declare the capability (runtimeConfig). */
  capabilityArgs?: { portMappings?: PortMapping[]; [cap: string]: unknown };
}

type CniCommand = 'ADD' | 'CHECK' | 'DEL';

/** "0.3.1" -> [0, 3, 1]; "" is 0.1.0, as libcni reads it. */
function cniVersionOf(v: string | undefined): number[] {
  if (!v) return [0, 1, 0];
  const parts = v.split('.');
  if (parts.length > 3 || !parts.every((p) => /^[0-9]+$/.test(p))) throw new Error(`invalid CNI version ${JSON.stringify(v)}`);
  return [0, 1, 2].map((k) => Number(parts[k] ?? 0));
}

function versionAtLeast(v: string | undefined, min: string): boolean {
  const [a, b] = [cniVersionOf(v), cniVersionOf(min)];
  const k = a.findIndex((x, i) => x !== b[i]);
  return k < 0 || a[k] > b[k];
}

function checkConflist(list: CniConflist): void {
  const where = `conflist ${JSON.stringify(list?.name)}`;
  if (typeof list?.name !== 'string' || list.name === '') throw new Error(`${where}: "name" must be a non-empty string`);
  if (list.cniVersion !== undefined && typeof list.cniVersion !== 'string') throw new Error(`${where}: "cniVersion" must be a string`);
  cniVersionOf(list.cniVersion);
  if (!Array.isArray(list.plugins) || list.plugins.length === 0) throw new Error(`${where}: "plugins" must be a non-empty list`);
  list.plugins.forEach((p, i) => {
    if (!isObject(p) || typeof p.type !== 'string' || p.type === '') throw new Error(`${where}: plugins[${i}] needs a string "type"`);
    if (p.capabilities !== undefined && !isObject(p.capabilities)) throw new Error(`${where}: plugins[${i}].capabilities must be an object`);
  });
}

function checkPod(pod: CniPod): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(pod.containerId)) throw new Error(`CNI containerID ${JSON.stringify(pod.containerId)}: must start with a letter or digit and hold only letters, digits, "_", "." and "-"`);
  if (pod.ifName === '' || pod.ifName.length > 15 || pod.ifName === '.' || pod.ifName === '..' || /[/:\s]/.test(pod.ifName)) {
    throw new Error(`CNI interface name ${JSON.stringify(pod.ifName)}: must be 1 to 15 characters, not "." or "..", without "/", ":" or spaces`);
  }
}

/**
 * libcni's AddNetworkList / CheckNetworkList / DelNetworkList for one node:
 * plugins run in the node's namespace (host), in list order for ADD and
 * CHECK and in reverse for DEL, each given the previous result on ADD and
 * (from spec 0.4.0 on) the cached ADD result on CHECK and DEL. A "flannel"
 * entry is flannel's plugin, done in-process (its binary is not packaged);
 * every other type is the binary of that name in binDir.
 */
export class CniRuntime {
  // libcni caches the last ADD result on disk (/var/lib/cni/results); the lab keeps it here.
  private readonly results = new Map<string, CniResult>();

  constructor(
    readonly host: Netns,
    readonly binDir = CNI_BIN_DIR,
  ) {}

  add(list: CniConflist, pod: CniPod): CniResult {
    checkConflist(list);
    checkPod(pod);
    let result: CniResult | undefined;
    for (const plugin of list.plugins) {
      result = this.invoke('ADD', plugin, pluginStdin(list, plugin, result, pod.capabilityArgs), pod) as CniResult;
    }
    this.results.set(this.cacheKey(list, pod), result!);
    return result!;
  }

  check(list: CniConflist, pod: CniPod): void {
    checkConflist(list);
    if (!versionAtLeast(list.cniVersion, '0.4.0')) throw new Error(`configuration version ${JSON.stringify(list.cniVersion ?? '')} does not support the CHECK command`);
    const cached = this.results.get(this.cacheKey(list, pod));
    if (!cached) throw new Error(`failed to get network ${JSON.stringify(list.name)} cached result: no ADD of ${pod.containerId}/${pod.ifName} on record`);
    for (const plugin of list.plugins) this.invoke('CHECK', plugin, pluginStdin(list, plugin, cached, pod.capabilityArgs), pod);
  }

  del(list: CniConflist, pod: CniPod): void {
    checkConflist(list);
    const key = this.cacheKey(list, pod);
    const cached = versionAtLeast(list.cniVersion, '0.4.0') ? this.results.get(key) : undefined;
    for (const plugin of [...list.plugins].reverse()) this.invoke('DEL', plugin, pluginStdin(list, plugin, cached, pod.capabilityArgs), pod);
    this.results.delete(key);
  }

  private cacheKey(list: CniConflist, pod: CniPod): string {
    return `${list.name}-${pod.containerId}-${pod.ifName}`;
  }

  private invoke(command: CniCommand, plugin: CniPluginConf, stdin: Record<string, unknown>, pod: CniPod): unknown {
    return plugin.type === 'flannel' ? this.flannel(command, stdin, pod) : this.exec(plugin.type, command, goJson(stdin), pod);
  }

  /** flannel's cmdAdd / cmdCheck / cmdDel. */
  private flannel(command: CniCommand, stdin: Record<string, unknown>, pod: CniPod): unknown {
    let nc: FlannelNetConf;
    try {
      nc = loadFlannelNetConf(stdin);
    } catch (e) {
      throw flannelError(command, command === 'ADD' ? `failed to load flannel netconf file: ${(e as Error).message}` : (e as Error).message);
    }
    if (command === 'CHECK') return undefined; // flannel's cmdCheck is a TODO that passes
    const scratch = path.join(nc.dataDir, pod.containerId);
    if (command === 'ADD') {
      let text: string;
      try {
        text = fs.readFileSync(nc.subnetFile, 'utf8');
      } catch (e) {
        throw flannelError('ADD', subnetEnvError(goPathError((e as NodeJS.ErrnoException).code === 'EISDIR' ? 'read' : 'open', nc.subnetFile, e)));
      }
      const delegate = buildFlannelDelegate(nc, text);
      let op = 'mkdir';
      try {
        fs.mkdirSync(nc.dataDir, { recursive: true, mode: 0o700 });
        op = 'open';
        const fd = fs.openSync(scratch, 'w', 0o600);
        try {
          fs.writeSync(fd, delegate);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      } catch (e) {
        throw flannelError('ADD', goPathError(op, op === 'mkdir' ? nc.dataDir : scratch, e));
      }
      return this.exec((JSON.parse(delegate) as { type: string }).type, 'ADD', delegate, pod);
    }
    let saved: string;
    try {
      saved = fs.readFileSync(scratch, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // already deleted: DEL succeeds
      throw flannelError('DEL', goPathError('open', scratch, e));
    }
    let type: unknown;
    try {
      type = (JSON.parse(saved) as { type?: unknown }).type;
    } catch {
      return undefined; // flannel logs it, keeps the file and reports success
    }
    try {
      return this.exec(typeof type === 'string' ? type : '', 'DEL', saved, pod);
    } finally {
      // flannel's deferred cleanup sees no error once the file parsed, so the
      // saved delegate goes even when the delegate's DEL failed.
      fs.rmSync(scratch, { force: true });
    }
  }

  /** Runs one plugin binary in the node's namespace; its result on ADD. */
  private exec(type: string, command: CniCommand, stdin: string, pod: CniPod): unknown {
    const bin = path.join(this.binDir, type);
    if (type === '' || type.includes('/') || !fs.existsSync(bin)) {
      throw new CniError(type, command, 0, `failed to find plugin ${JSON.stringify(type)} in path [${this.binDir}] (Debian's containernetworking-plugins; scripts/ensure-tools.sh installs it)`);
    }
    const env = {
      ...process.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: pod.netns.path,
      CNI_ARGS: (pod.args ?? []).map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_IFNAME: pod.ifName,
      CNI_PATH: this.binDir,
    };
    const r = spawnSync('ip', ['netns', 'exec', this.host.name, bin], { input: stdin, env, encoding: 'utf8', timeout: 30_000 });
    if (r.error) throw new CniError(type, command, 0, `netplugin failed: ${r.error.message}`);
    if (r.status !== 0) {
      // libcni's pluginErr: the error JSON on stdout, else what went wrong instead.
      const out = r.stdout.trim();
      const status = r.status === null ? `signal: ${r.signal}` : `exit status ${r.status}`;
      if (out === '') throw new CniError(type, command, 0, r.stderr ? `netplugin failed: ${goQuote(r.stderr)}` : `netplugin failed with no error message: ${status}`);
      let e: { code?: unknown; msg?: unknown; details?: unknown };
      try {
        e = JSON.parse(out) as typeof e;
      } catch (err) {
        throw new CniError(type, command, 0, `netplugin failed but error parsing its diagnostic message ${goQuote(out)}: ${(err as Error).message}`);
      }
      throw new CniError(type, command, Number(e.code ?? 0), String(e.msg ?? ''), e.details ? String(e.details) : '');
    }
    if (command !== 'ADD') return undefined;
    try {
      return JSON.parse(r.stdout) as CniResult;
    } catch (err) {
      throw new CniError(type, command, 0, `result is not JSON (${(err as Error).message}): ${goQuote(r.stdout.slice(0, 200))}`);
    }
  }
}

/** The pod's IPv4 address on ifName (the result's sandbox interface), with its gateway. */
export function podAddress(result: CniResult, ifName = 'eth0'): { address: string; prefixLen: number; gateway?: string } {
  for (const ip of result.ips ?? []) {
    const iface = ip.interface === undefined ? undefined : result.interfaces?.[ip.interface];
    const [address, len] = ip.address.split('/');
    if (iface?.name === ifName && iface.sandbox && !address.includes(':')) return { address, prefixLen: Number(len), gateway: ip.gateway };
  }
  throw new Error(`CNI result has no IPv4 address on the pod's ${ifName}: ${JSON.stringify(result)}`);
}

// ---------------------------------------------------------------------------
// A node's pods, as kubelet and containerd wire them.

/**
 * Each pod gets containerd's loopback network on lo, then the node's conflist
 * on eth0; DEL goes the same order (go-cni's Remove walks its networks in
 * order). CNI_ARGS carry what containerd passes for a Kubernetes pod.
 */
export class NodeCni {
  readonly runtime: CniRuntime;

  constructor(
    readonly host: Netns,
    readonly conflist: CniConflist,
    binDir = CNI_BIN_DIR,
  ) {
    this.runtime = new CniRuntime(host, binDir);
  }

  pod(netns: Netns, ifName: string, portMappings?: PortMapping[]): CniPod {
    const args: [string, string][] = [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'default'],
      ['K8S_POD_NAME', netns.name],
      ['K8S_POD_INFRA_CONTAINER_ID', netns.name],
    ];
    return { containerId: netns.name, netns, ifName, args, capabilityArgs: portMappings ? { portMappings } : {} };
  }

  /** ADD: lo, then eth0; returns once the new links are up (the kernel drops what is sent before). */
  addPod(netns: Netns, portMappings?: PortMapping[]): CniResult {
    this.runtime.add(LOOPBACK_CONFLIST, this.pod(netns, 'lo'));
    const result = this.runtime.add(this.conflist, this.pod(netns, 'eth0', portMappings));
    for (const iface of result.interfaces ?? []) (iface.sandbox ? netns : this.host).waitOperUp(iface.name);
    return result;
  }

  /** CHECK of the pod network (containerd's loopback list is 0.3.1, which has no CHECK). */
  checkPod(netns: Netns, portMappings?: PortMapping[]): void {
    this.runtime.check(this.conflist, this.pod(netns, 'eth0', portMappings));
  }

  delPod(netns: Netns, portMappings?: PortMapping[]): void {
    this.runtime.del(LOOPBACK_CONFLIST, this.pod(netns, 'lo'));
    this.runtime.del(this.conflist, this.pod(netns, 'eth0', portMappings));
  }
}
