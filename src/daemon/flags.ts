// flanneld's flags, their defaults and FLANNELD_* environment variables,
// parsed the way Go's flag package does (-flag, --flag, -flag=value,
// -flag value; booleans take no value or =true/=false). A command line flag
// beats the environment. Every error names the flag and what was wrong.

export interface DaemonFlags {
  etcdEndpoints: string[] | null; // null: not given -> the embedded store
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
  subnetLeaseRenewMargin: number;
  ipMasq: boolean;
  kubeSubnetMgr: boolean;
  netConfigPath: string;
  healthzIp: string;
  healthzPort: number;
  verbosity: number;
  // weft's own
  storePath: string;
  statusSocket: string; // '' -> next to the subnet file
  statusSocketGroup: string;
  leaseTtl: number; // seconds
  allowAnySource: boolean;
  strictSource: boolean;
}

type Kind = 'string' | 'list' | 'bool' | 'int';
interface Spec {
  key: keyof DaemonFlags;
  kind: Kind;
  min?: number;
  max?: number;
  help: string;
}

// flanneld's defaults (FLANNEL.md §6). --etcd-endpoints keeps flannel's
// default in the help text, but weft uses it only when the flag or
// FLANNELD_ETCD_ENDPOINTS is given: without it, weft runs on its embedded store.
export const FLANNEL_ETCD_DEFAULT = 'http://127.0.0.1:4001,http://127.0.0.1:2379';

const SPECS: Record<string, Spec> = {
  'etcd-endpoints': { key: 'etcdEndpoints', kind: 'list', help: `etcd endpoints, comma-separated (flannel: ${FLANNEL_ETCD_DEFAULT}); none: the embedded store` },
  'etcd-prefix': { key: 'etcdPrefix', kind: 'string', help: 'etcd prefix' },
  'etcd-keyfile': { key: 'etcdKeyfile', kind: 'string', help: 'SSL key file used to secure etcd communication' },
  'etcd-certfile': { key: 'etcdCertfile', kind: 'string', help: 'SSL certification file used to secure etcd communication' },
  'etcd-cafile': { key: 'etcdCafile', kind: 'string', help: 'SSL Certificate Authority file used to secure etcd communication' },
  'etcd-username': { key: 'etcdUsername', kind: 'string', help: 'username for BasicAuth to etcd' },
  'etcd-password': { key: 'etcdPassword', kind: 'string', help: 'password for BasicAuth to etcd' },
  iface: { key: 'iface', kind: 'list', help: 'interface to use (IP or name) for inter-host communication; repeatable' },
  'iface-regex': { key: 'ifaceRegex', kind: 'list', help: 'regex of the IP or name of the interface to use; repeatable' },
  'iface-can-reach': { key: 'ifaceCanReach', kind: 'string', help: 'detect the interface through which this IP is reached' },
  'public-ip': { key: 'publicIp', kind: 'string', help: 'IP accessible by other nodes for inter-host communication' },
  'subnet-file': { key: 'subnetFile', kind: 'string', help: 'filename where env variables (subnet, MTU, ...) will be written to' },
  'subnet-lease-renew-margin': { key: 'subnetLeaseRenewMargin', kind: 'int', min: 1, max: 1439, help: 'subnet lease renewal margin, in minutes' },
  'ip-masq': { key: 'ipMasq', kind: 'bool', help: 'setup IP masquerade rule for traffic destined outside of overlay network (not supported yet)' },
  'kube-subnet-mgr': { key: 'kubeSubnetMgr', kind: 'bool', help: 'contact the Kubernetes API for subnet assignment (not supported yet)' },
  'net-config-path': { key: 'netConfigPath', kind: 'string', help: 'path to the network configuration file (feeds the embedded store)' },
  'healthz-ip': { key: 'healthzIp', kind: 'string', help: 'the IP address for healthz server to listen' },
  'healthz-port': { key: 'healthzPort', kind: 'int', min: 0, max: 65535, help: 'the port for healthz server to listen (0 to disable)' },
  v: { key: 'verbosity', kind: 'int', min: 0, max: 10, help: 'log level: 0 info, 1 debug, 2+ trace' },
  'store-path': { key: 'storePath', kind: 'string', help: "weft: the embedded store's SQLite file" },
  'status-socket': { key: 'statusSocket', kind: 'string', help: "weft: the unix socket `weft status` reads (default: beside the subnet file)" },
  'allow-any-source': { key: 'allowAnySource', kind: 'bool', help: "weft: accept overlay traffic from any underlay address, as flannel does (for NAT'd underlays); default: only from peers' public IPs" },
  'lease-ttl': { key: 'leaseTtl', kind: 'int', min: 10, max: 7 * 86400, help: "weft: the lease's TTL in seconds (flannel's is fixed at 24 h)" },
};

export function defaultFlags(): DaemonFlags {
  return {
    etcdEndpoints: null,
    etcdPrefix: '/coreos.com/network',
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
    subnetFile: '/run/flannel/subnet.env',
    subnetLeaseRenewMargin: 60,
    ipMasq: false,
    kubeSubnetMgr: false,
    netConfigPath: '/etc/kube-flannel/net-conf.json',
    healthzIp: '0.0.0.0',
    healthzPort: 0,
    verbosity: 0,
    storePath: '/var/lib/weft/leases.db',
    statusSocket: '',
    statusSocketGroup: '',
    leaseTtl: 24 * 60 * 60,
    allowAnySource: false,
    strictSource: false,
  };
}

export class FlagError extends Error {}

function setValue(flags: DaemonFlags, name: string, spec: Spec, raw: string, from: string): void {
  const f = flags as unknown as Record<string, unknown>;
  switch (spec.kind) {
    case 'string':
      f[spec.key] = raw;
      return;
    case 'list': {
      const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
      const prev = (f[spec.key] as string[] | null) ?? [];
      f[spec.key] = [...prev, ...items];
      return;
    }
    case 'bool': {
      const v = raw.toLowerCase();
      if (!['1', 't', 'true', '0', 'f', 'false'].includes(v)) {
        throw new FlagError(`invalid boolean value "${raw}" for ${from}`);
      }
      f[spec.key] = ['1', 't', 'true'].includes(v);
      return;
    }
    case 'int': {
      if (!/^-?\d+$/.test(raw)) throw new FlagError(`invalid value "${raw}" for ${from}: not a whole number`);
      const n = Number(raw);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new FlagError(`invalid value "${raw}" for ${from}: must be ${spec.min}..${spec.max}`);
      }
      f[spec.key] = n;
      return;
    }
  }
}

/** Parses argv (after the command name) and env. Throws FlagError. */
export function parseDaemonFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonFlags {
  const flags = defaultFlags();
  const fromCli = new Set<string>();
  const cli: Array<[string, Spec, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new FlagError(`unexpected argument "${arg}" (flags start with --)`);
    const [, name, inline] = m;
    const spec = SPECS[name];
    if (!spec) throw new FlagError(`flag provided but not defined: -${name}`);
    let value = inline;
    if (value === undefined) {
      if (spec.kind === 'bool') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new FlagError(`flag needs an argument: -${name}`);
    }
    cli.push([name, spec, value]);
    fromCli.add(name);
  }
  // Environment first, so the command line overrides it.
  for (const [name, spec] of Object.entries(SPECS)) {
    const envName = `FLANNELD_${name.toUpperCase().replace(/-/g, '_')}`;
    const v = env[envName];
    if (v !== undefined && v !== '' && !fromCli.has(name)) setValue(flags, name, spec, v, envName);
  }
  for (const [name, spec, value] of cli) setValue(flags, name, spec, value, `flag -${name}`);
  if (flags.etcdEndpoints) {
    if (flags.etcdEndpoints.length === 0) throw new FlagError('invalid --etcd-endpoints: no endpoint given');
    for (const e of flags.etcdEndpoints) {
      if (!/^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(e)) throw new FlagError(`invalid --etcd-endpoints "${e}": expected http(s)://host:port`);
    }
  }
  for (const re of flags.ifaceRegex) {
    try {
      new RegExp(re);
    } catch (err) {
      throw new FlagError(`invalid --iface-regex "${re}": ${(err as Error).message}`);
    }
  }
  return flags;
}

export function flagsHelp(): string {
  const d = defaultFlags() as unknown as Record<string, unknown>;
  return Object.entries(SPECS)
    .map(([name, s]) => {
      const def = d[s.key];
      const shown = Array.isArray(def) ? def.join(',') : def === null ? '' : String(def);
      return `  --${name}${s.kind === 'bool' ? '' : ` ${s.kind === 'int' ? 'N' : 'VALUE'}`}\n      ${s.help}${shown !== '' && shown !== 'false' ? ` (default ${shown})` : ''}`;
    })
    .join('\n');
}
