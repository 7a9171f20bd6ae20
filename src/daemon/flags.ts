// flanneld's command line, read the way flanneld reads it, so that systemd
// units, DaemonSet manifests and runbooks written for flanneld carry over:
//
// - Go's `flag` package (flannel's FlagSet is ExitOnError): `-f`, `--f`,
//   `-f=v`, `-f v` (never for a boolean: `-f false` makes `false` the first
//   positional argument), names are case-sensitive, parsing stops at the
//   first non-flag argument or `--` and the rest is ignored, `-h`/`-help`
//   print the usage. Every error goes through flannel's usage(), which exits
//   0: so does weft, for exactly those errors (kind 'error', exitCode 0,
//   with the usage to print after the message).
// - Values as Go parses them: ints with strconv.ParseInt(s, 0, 64) (`0x3c`,
//   `0o74`, `1_000`), booleans with strconv.ParseBool (case-exact), klog's
//   -v as a decimal int32, -vmodule and -log_backtrace_at with klog's checks.
//   A repeatable flag (--iface, --iface-regex) takes each occurrence whole:
//   no comma splitting, so `eth[0-9]{1,2}` is one regex.
// - FLANNELD_<NAME> (coreos/pkg flagutil): after the command line, only for
//   flags not given there, empty values ignored, one element for a list.
//   A bad value is a warning (flanneld logs "Failed to set flag FLANNELD
//   from env" and carries on) and the default stays. flanneld itself keeps
//   what Go's Set left behind (0 for a bad int, false for a bad bool), which
//   would silently turn --iptables-forward-rules off; weft keeps the default
//   and says so. flanneld logs only the last bad variable; weft logs each.
// - Then the checks flanneld makes after reading env (renew margin) and
//   weft's own (ranges, endpoints), which exit 1.
//
// Pure: argv and env in, a result out. The caller prints and exits.

import {
  DEFAULT_ETCD_PREFIX,
  DEFAULT_KUBE_ANNOTATION_PREFIX,
  DEFAULT_NET_CONFIG_PATH,
  DEFAULT_STORE_PATH,
  DEFAULT_SUBNET_FILE,
  FLANNEL_ETCD_ENDPOINTS,
  LEASE_TTL_SECONDS,
  RENEW_MARGIN_MINUTES,
} from '../defaults';

export interface DaemonFlags {
  etcdEndpoints: string[] | null; // null: not given -> weft's embedded store (a documented difference)
  etcdPrefix: string;
  etcdKeyfile: string;
  etcdCertfile: string;
  etcdCafile: string;
  etcdUsername: string;
  etcdPassword: string;
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach: string;
  publicIp: string;
  publicIpv6: string;
  subnetFile: string;
  subnetLeaseRenewMargin: number; // minutes
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  kubeSubnetMgr: boolean;
  kubeApiUrl: string;
  kubeconfigFile: string;
  kubeAnnotationPrefix: string;
  setNodeNetworkUnavailable: boolean;
  netConfigPath: string;
  healthzIp: string;
  healthzPort: number;
  iptablesResync: number; // seconds
  iptablesForwardRules: boolean;
  ipBlackholeRoute: boolean;
  verbosity: number;
  vmodule: string;
  logBacktraceAt: string;
  // weft's own
  storePath: string;
  statusSocket: string; // '' -> beside the subnet file
  statusSocketGroup: string; // '' -> root only (0600); else a group name or gid given read/write
  leaseTtl: number; // seconds
  allowAnySource: boolean;
  strictSource: boolean;
}

export type ParseResult =
  | { kind: 'run'; flags: DaemonFlags; warnings: string[] }
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  /** Print `message`, then `usage` when there is one, and exit with exitCode. */
  | { kind: 'error'; message: string; exitCode: number; usage?: string };

// How a flag's value is read. 'value' kinds show as "value" in the usage, as
// Go shows any flag.Value that is not one of its own types.
type Kind = 'string' | 'list' | 'bool' | 'int' | 'klog-level' | 'klog-vmodule' | 'klog-backtrace';

interface Spec {
  /** null: --version, which is no setting. */
  key: keyof DaemonFlags | null;
  kind: Kind;
  help: string;
}

const LEASE_TTL = { min: 10, max: 7 * 86400 };

const SPECS: Record<string, Spec> = {
  'etcd-endpoints': {
    key: 'etcdEndpoints',
    kind: 'string',
    help: `etcd endpoints, comma-separated: http(s)://host[:port], host:port, unix:///path. Not given: weft's embedded store (flanneld would try ${FLANNEL_ETCD_ENDPOINTS})`,
  },
  'etcd-prefix': { key: 'etcdPrefix', kind: 'string', help: 'the etcd key prefix of the network' },
  'etcd-keyfile': { key: 'etcdKeyfile', kind: 'string', help: 'client key file for TLS to etcd' },
  'etcd-certfile': { key: 'etcdCertfile', kind: 'string', help: 'client certificate file for TLS to etcd' },
  'etcd-cafile': { key: 'etcdCafile', kind: 'string', help: "CA file to check etcd's certificate" },
  'etcd-username': { key: 'etcdUsername', kind: 'string', help: 'user name for etcd authentication' },
  'etcd-password': {
    key: 'etcdPassword',
    kind: 'string',
    help: 'password for etcd authentication; prefer FLANNELD_ETCD_PASSWORD, as any user can read a command line (ps)',
  },
  iface: {
    key: 'iface',
    kind: 'list',
    help: 'interface (name or IP) to carry the overlay; repeat it to give candidates, tried in order',
  },
  'iface-regex': {
    key: 'ifaceRegex',
    kind: 'list',
    help: "regex on interface IPs, then names, tried after every --iface; repeat it for more (Go's RE2 syntax, translated)",
  },
  'iface-can-reach': {
    key: 'ifaceCanReach',
    kind: 'string',
    help: 'use the interface the kernel routes this IP through (ip route get), tried after --iface and --iface-regex',
  },
  'subnet-file': { key: 'subnetFile', kind: 'string', help: 'where to write the subnet.env the CNI plugin reads' },
  'public-ip': { key: 'publicIp', kind: 'string', help: 'the IP other nodes send to (default: the interface address)' },
  'public-ipv6': { key: 'publicIpv6', kind: 'string', help: 'the IPv6 address other nodes send to' },
  'subnet-lease-renew-margin': {
    key: 'subnetLeaseRenewMargin',
    kind: 'int',
    help: 'renew the lease this many minutes before it expires (1 to 1439)',
  },
  'ip-masq': { key: 'ipMasq', kind: 'bool', help: 'masquerade traffic from pods that leaves the overlay network' },
  'ip-masq-fully-random-disable': {
    key: 'ipMasqFullyRandomDisable',
    kind: 'bool',
    help: 'masquerade without --random-fully',
  },
  'kube-subnet-mgr': { key: 'kubeSubnetMgr', kind: 'bool', help: "take the subnet from the Kubernetes node's podCIDR, not etcd" },
  'kube-api-url': { key: 'kubeApiUrl', kind: 'string', help: 'Kubernetes API server URL (not needed in a pod)' },
  'kubeconfig-file': { key: 'kubeconfigFile', kind: 'string', help: 'kubeconfig file (not needed in a pod)' },
  'kube-annotation-prefix': {
    key: 'kubeAnnotationPrefix',
    kind: 'string',
    help: 'prefix of the node annotations; "/" is added unless it has one',
  },
  'set-node-network-unavailable': {
    key: 'setNodeNetworkUnavailable',
    kind: 'bool',
    help: "set the node's NetworkUnavailable condition to False once ready",
  },
  'net-config-path': {
    key: 'netConfigPath',
    kind: 'string',
    help: 'the net-conf.json to read (with --kube-subnet-mgr, or for the embedded store)',
  },
  'healthz-ip': { key: 'healthzIp', kind: 'string', help: 'address for the /healthz and /readyz server' },
  'healthz-port': { key: 'healthzPort', kind: 'int', help: 'port for the /healthz and /readyz server (0: no server)' },
  'iptables-resync': { key: 'iptablesResync', kind: 'int', help: 'check the packet-filter rules every this many seconds' },
  'iptables-forward-rules': {
    key: 'iptablesForwardRules',
    kind: 'bool',
    help: 'accept forwarded traffic to and from the pod network in the FORWARD chain',
  },
  'ip-blackhole-route': { key: 'ipBlackholeRoute', kind: 'bool', help: "add a blackhole route for this node's own subnet" },
  v: { key: 'verbosity', kind: 'klog-level', help: 'log verbosity: 0 info, 1 debug, 2 and more trace' },
  vmodule: { key: 'vmodule', kind: 'klog-vmodule', help: "per-file verbosity, pattern=N,... (checked as klog does; weft's log ignores it)" },
  log_backtrace_at: {
    key: 'logBacktraceAt',
    kind: 'klog-backtrace',
    help: "file.go:N where klog would add a stack trace (checked as klog does; weft's log ignores it)",
  },
  version: { key: null, kind: 'bool', help: 'print the version and exit' },
  'store-path': { key: 'storePath', kind: 'string', help: "weft: the embedded store's SQLite file" },
  'status-socket': {
    key: 'statusSocket',
    kind: 'string',
    help: 'weft: the unix socket `weft status` reads (default: weft.sock beside the subnet file)',
  },
  'status-socket-group': {
    key: 'statusSocketGroup',
    kind: 'string',
    help: 'weft: group (name or gid) that may read and write the status socket (default: root only, mode 0600)',
  },
  'lease-ttl': {
    key: 'leaseTtl',
    kind: 'int',
    help: `weft: the lease's lifetime in seconds, ${LEASE_TTL.min} to ${LEASE_TTL.max} (flanneld's is fixed at 24 h)`,
  },
  'allow-any-source': {
    key: 'allowAnySource',
    kind: 'bool',
    help: "weft: accept overlay packets from any underlay address, as flanneld does (NAT'd underlays); default: only from peers' public IPs",
  },
  'strict-source': {
    key: 'strictSource',
    kind: 'bool',
    help: "weft: accept an inner packet only if its source is inside the sending peer's subnet",
  },
};

export function defaultFlags(): DaemonFlags {
  return {
    etcdEndpoints: null,
    etcdPrefix: DEFAULT_ETCD_PREFIX,
    etcdKeyfile: '',
    etcdCertfile: '',
    etcdCafile: '',
    etcdUsername: '',
    etcdPassword: '',
    iface: [],
    ifaceRegex: [],
    ifaceCanReach: '',
    publicIp: '',
    publicIpv6: '',
    subnetFile: DEFAULT_SUBNET_FILE,
    subnetLeaseRenewMargin: RENEW_MARGIN_MINUTES,
    ipMasq: false,
    ipMasqFullyRandomDisable: false,
    kubeSubnetMgr: false,
    kubeApiUrl: '',
    kubeconfigFile: '',
    kubeAnnotationPrefix: DEFAULT_KUBE_ANNOTATION_PREFIX,
    setNodeNetworkUnavailable: true,
    netConfigPath: DEFAULT_NET_CONFIG_PATH,
    healthzIp: '0.0.0.0',
    healthzPort: 0,
    iptablesResync: 5,
    iptablesForwardRules: true,
    ipBlackholeRoute: false,
    verbosity: 0,
    vmodule: '',
    logBacktraceAt: '',
    storePath: DEFAULT_STORE_PATH,
    statusSocket: '',
    statusSocketGroup: '',
    leaseTtl: LEASE_TTL_SECONDS,
    allowAnySource: false,
    strictSource: false,
  };
}

// ---------------------------------------------------------------------------
// Go's value syntax

/** Go's strconv.ParseBool: exactly these spellings. */
function goParseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

// strconv's underscoreOK: '_' only between digits or right after a base prefix.
function underscoresOk(s: string): boolean {
  let body = s.replace(/^[+-]/, '');
  let saw = '^';
  let hex = false;
  if (/^0[bBoOxX]/.test(body)) {
    saw = '0';
    hex = /^0[xX]/.test(body);
    body = body.slice(2);
  }
  for (const c of body) {
    if (/[0-9]/.test(c) || (hex && /[a-fA-F]/.test(c))) saw = '0';
    else if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
    } else {
      if (saw === '_') return false;
      saw = '!';
    }
  }
  return saw !== '_';
}

/**
 * strconv.ParseInt(s, base, bits): base 0 reads 0x/0o/0b prefixes, a leading
 * 0 as octal and '_' separators; base 10 reads plain decimals. Returns the
 * number or the error word Go's flag package reports.
 */
function goParseInt(s: string, base: 0 | 10, bits: 32 | 64): number | 'parse error' | 'value out of range' {
  let body = s;
  let neg = false;
  if (body.startsWith('+') || body.startsWith('-')) {
    neg = body[0] === '-';
    body = body.slice(1);
  }
  if (body === '') return 'parse error';
  let radix = 10;
  if (base === 0 && body[0] === '0') {
    const p = body.length >= 3 ? body[1].toLowerCase() : '';
    radix = p === 'b' ? 2 : p === 'o' ? 8 : p === 'x' ? 16 : 8;
    body = body.slice(p === 'b' || p === 'o' || p === 'x' ? 2 : 1);
  }
  let underscores = false;
  let n = 0n;
  for (const c of body) {
    if (c === '_' && base === 0) {
      underscores = true;
      continue;
    }
    const d = parseInt(c, 36);
    if (Number.isNaN(d) || d >= radix) return 'parse error';
    n = n * BigInt(radix) + BigInt(d);
  }
  if (underscores && !underscoresOk(s)) return 'parse error';
  const limit = 1n << BigInt(bits - 1);
  if (neg ? n > limit : n >= limit) return 'value out of range';
  return Number(neg ? -n : n);
}

// klog's -vmodule: pattern=N,... with N a non-negative decimal int32.
function checkVmodule(s: string): string | undefined {
  for (const pat of s.split(',')) {
    if (pat === '') continue;
    const parts = pat.split('=');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return 'syntax error: expect comma-separated list of filename=N';
    const v = goParseInt(parts[1], 10, 32);
    if (typeof v !== 'number') return 'syntax error: expect comma-separated list of filename=N';
    if (v < 0) return 'negative value for vmodule level';
  }
  return undefined;
}

// klog's -log_backtrace_at: file.go:N, N > 0; empty unsets it.
function checkBacktrace(s: string): string | undefined {
  if (s === '') return undefined;
  const fields = s.split(':');
  if (fields.length !== 2 || !fields[0].includes('.')) return 'syntax error: expect file.go:234';
  const line = goParseInt(fields[1], 10, 64);
  if (typeof line !== 'number') return 'syntax error: expect file.go:234';
  if (line <= 0) return 'negative or zero value for level';
  return undefined;
}

/** Go's %q for the printable ASCII that command lines hold. */
const quote = (s: string): string => JSON.stringify(s);

/** A value for the spec, or the error text Go's Value.Set would give. */
function readValue(spec: Spec, raw: string): { value: string | number | boolean } | { error: string } {
  switch (spec.kind) {
    case 'string':
    case 'list':
      return { value: raw };
    case 'bool': {
      const b = goParseBool(raw);
      return b === undefined ? { error: 'parse error' } : { value: b };
    }
    case 'int': {
      const n = goParseInt(raw, 0, 64);
      return typeof n === 'number' ? { value: n } : { error: n };
    }
    case 'klog-level': {
      // klog passes strconv's own error through.
      const n = goParseInt(raw, 10, 32);
      if (typeof n === 'number') return { value: n };
      return { error: `strconv.ParseInt: parsing ${quote(raw)}: ${n === 'parse error' ? 'invalid syntax' : n}` };
    }
    case 'klog-vmodule': {
      const e = checkVmodule(raw);
      return e ? { error: e } : { value: raw };
    }
    case 'klog-backtrace': {
      const e = checkBacktrace(raw);
      return e ? { error: e } : { value: raw };
    }
  }
}

function store(flags: DaemonFlags, spec: Spec, value: string | number | boolean): void {
  if (spec.key === null) return;
  const f = flags as unknown as Record<string, unknown>;
  if (spec.kind === 'list') f[spec.key] = [...(f[spec.key] as string[]), value];
  else if (spec.key === 'etcdEndpoints') f[spec.key] = String(value).split(',');
  else f[spec.key] = value;
}

export function envName(flag: string): string {
  return `FLANNELD_${flag.replace(/-/g, '_').toUpperCase()}`;
}

// ---------------------------------------------------------------------------
// etcd endpoints

/**
 * One --etcd-endpoints item as weft's etcd client (etcd3 over @grpc/grpc-js)
 * must be given it, or an error. The forms etcd's Go client takes, and what
 * becomes of each (each checked against a real etcd):
 *   http(s)://host[:port][/path]  etcd dials host:port and ignores any path;
 *                                 etcd3 strips only the scheme and grpc-js
 *                                 cannot parse "host:port/", so the path is
 *                                 dropped here.
 *   host:port                     dialed as is (grpc-js resolves by DNS).
 *   unix:///abs/path, unix:rel    dialed as is (grpc-js's unix resolver).
 *   unix://rel                    etcd's older relative form; grpc-js would
 *                                 read "/rel", so it becomes unix:rel.
 *   unixs://...                   refused: etcd3 has no TLS-over-unix scheme.
 */
function etcdEndpoint(e: string): string | Error {
  const bad = (why: string) => new Error(`invalid --etcd-endpoints ${quote(e)}: ${why}`);
  const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:(\d{1,5}))?$/;
  const portOk = (m: RegExpExecArray) => m[3] === undefined || (Number(m[3]) >= 1 && Number(m[3]) <= 65535);
  if (/^unixs:/.test(e)) return bad('unixs:// (TLS over a unix socket) is not supported by weft\'s etcd client; use unix:///path');
  if (/^unix:/.test(e)) {
    const rest = e.replace(/^unix:(\/\/(?!\/))?/, '');
    if (rest === '' || rest === '/') return bad('no socket path after unix:');
    return e.startsWith('unix:///') ? e : `unix:${rest}`;
  }
  const url = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/.exec(e);
  if (url) {
    const scheme = url[1].toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return bad(`unknown scheme ${scheme}://; expected http, https or unix`);
    const m = hostPort.exec(url[2]);
    if (!m || !portOk(m)) return bad('expected http(s)://host[:port]');
    return `${scheme}://${url[2]}`;
  }
  const m = hostPort.exec(e);
  if (!m || m[3] === undefined || !portOk(m)) return bad('expected http(s)://host[:port], host:port or unix:///path');
  return e;
}

// ---------------------------------------------------------------------------
// The parse

/** Parses a flanneld command line (argv after the command) and its FLANNELD_* environment. Pure. */
export function parseDaemonFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParseResult {
  const flags = defaultFlags();
  const onCli = new Set<string>();
  const warnings: string[] = [];
  let version = false;
  const fail = (message: string): ParseResult => ({ kind: 'error', message, exitCode: 0, usage: daemonUsage() });

  // Go's FlagSet.parseOne, one argument (or two) at a time.
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.length < 2 || arg[0] !== '-') break;
    const dashes = arg[1] === '-' ? 2 : 1;
    if (arg === '--') {
      i++;
      break;
    }
    let name = arg.slice(dashes);
    if (name === '' || name[0] === '-' || name[0] === '=') return fail(`bad flag syntax: ${arg}`);
    let inline: string | undefined;
    const eq = name.indexOf('=');
    if (eq > 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = Object.hasOwn(SPECS, name) ? SPECS[name] : undefined;
    if (!spec) {
      if (name === 'h' || name === 'help') return { kind: 'help', text: daemonUsage() };
      return fail(`flag provided but not defined: -${name}`);
    }
    let value: string;
    if (spec.kind === 'bool') {
      value = inline ?? 'true';
      const r = readValue(spec, value);
      if ('error' in r) return fail(`invalid boolean value ${quote(value)} for -${name}: ${r.error}`);
      if (spec.key === null) version = r.value as boolean;
      else store(flags, spec, r.value);
    } else {
      if (inline === undefined) {
        if (i + 1 >= argv.length) return fail(`flag needs an argument: -${name}`);
        inline = argv[++i];
      }
      value = inline;
      const r = readValue(spec, value);
      if ('error' in r) return fail(`invalid value ${quote(value)} for flag -${name}: ${r.error}`);
      store(flags, spec, r.value);
    }
    onCli.add(name);
  }
  const ignored = argv.slice(i);
  if (ignored.length > 0) {
    warnings.push(`ignoring arguments after the flags (flanneld ignores them too): ${ignored.map(quote).join(' ')}`);
  }

  // flanneld looks at --version before it reads the environment.
  if (version) return { kind: 'version' };

  for (const name of Object.keys(SPECS).sort()) {
    const spec = SPECS[name];
    const key = envName(name);
    const raw = env[key];
    if (onCli.has(name) || raw === undefined || raw === '' || spec.key === null) continue;
    const r = readValue(spec, raw);
    if ('error' in r) warnings.push(`Failed to set flag FLANNELD from env: invalid value ${quote(raw)} for ${key}: ${r.error}; keeping the default`);
    else store(flags, spec, r.value);
  }

  const invalid = checkFlags(flags);
  if (invalid) return { kind: 'error', message: invalid, exitCode: 1 };
  return { kind: 'run', flags, warnings };
}

// What flanneld checks once the environment is in (the renew margin), then
// weft's own checks; either stops start-up with exit 1. Also normalizes
// the etcd endpoints for weft's client (see etcdEndpoint).
function checkFlags(f: DaemonFlags): string | undefined {
  if (f.subnetLeaseRenewMargin >= 24 * 60 || f.subnetLeaseRenewMargin <= 0) {
    return 'Invalid subnet-lease-renew-margin option, out of acceptable range';
  }
  if (f.leaseTtl < LEASE_TTL.min || f.leaseTtl > LEASE_TTL.max) {
    return `invalid --lease-ttl ${f.leaseTtl}: must be ${LEASE_TTL.min}..${LEASE_TTL.max} seconds`;
  }
  if (f.healthzPort < 0 || f.healthzPort > 65535) return `invalid --healthz-port ${f.healthzPort}: must be 0..65535`;
  // flanneld would panic in its resync ticker on a period below 1 s.
  if (f.iptablesResync < 1) return `invalid --iptables-resync ${f.iptablesResync}: must be at least 1 second`;
  if (f.statusSocketGroup !== '' && !/^([0-9]+|[A-Za-z_][A-Za-z0-9_.-]*\$?)$/.test(f.statusSocketGroup)) {
    return `invalid --status-socket-group ${quote(f.statusSocketGroup)}: expected a group name or a numeric gid`;
  }
  if (f.etcdEndpoints) {
    const items = f.etcdEndpoints.map((e) => e.trim()).filter((e) => e !== '');
    if (items.length === 0) return `invalid --etcd-endpoints ${quote(f.etcdEndpoints.join(','))}: no endpoint given`;
    const dialed: string[] = [];
    for (const e of items) {
      const d = etcdEndpoint(e);
      if (d instanceof Error) return d.message;
      dialed.push(d);
    }
    // etcd3 refuses to start on such a list; say so here, naming the flag.
    const tls = dialed.filter((d) => d.startsWith('https://')).length;
    if (tls > 0 && tls < dialed.length) {
      return `invalid --etcd-endpoints ${quote(f.etcdEndpoints.join(','))}: all endpoints or none must be https://`;
    }
    f.etcdEndpoints = dialed;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Usage, in the shape of Go's PrintDefaults: sorted by name, the value's
// type word, the help on the next line after four spaces and a tab, and the
// default when it is not the type's zero value (strings quoted).

function typeWord(kind: Kind): string {
  return kind === 'bool' ? '' : kind === 'string' ? 'string' : kind === 'int' ? 'int' : 'value';
}

/** The flag list alone (Go's PrintDefaults). */
export function flagsHelp(): string {
  const d = defaultFlags() as unknown as Record<string, unknown>;
  return Object.keys(SPECS)
    .sort()
    .map((name) => {
      const s = SPECS[name];
      const word = typeWord(s.kind);
      const head = `  -${name}${word ? ` ${word}` : ''}`;
      const def = s.key === null ? false : d[s.key];
      let shown = '';
      if (typeof def === 'string' && def !== '') shown = ` (default ${quote(def)})`;
      else if ((typeof def === 'number' && def !== 0) || def === true) shown = ` (default ${def})`;
      return `${head}${head.length <= 4 ? '\t' : '\n    \t'}${s.help}${shown}`;
    })
    .join('\n');
}

/** What -h prints (flanneld prints it on stderr and exits 0). */
export function daemonUsage(): string {
  return `Usage: weft [OPTION]...\n(weft help lists weft's other commands: status, config check, engine, version)\n${flagsHelp()}\n`;
}
