// flanneld's command line: a table of invocations, each with what flanneld
// does with it (Go's flag package with flannel's usage(), which exits 0;
// coreos/pkg flagutil for FLANNELD_*; klog's -v, -vmodule,
// -log_backtrace_at; the checks main() makes after reading env) and, where
// weft differs on purpose, what weft does and why.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type DaemonFlags, defaultFlags, flagsHelp, parseDaemonFlags, type ParseResult } from '../../src/daemon/flags';

type Outcome =
  | { run: Partial<DaemonFlags>; warnings?: RegExp[] }
  | { help: true }
  | { version: true }
  | { error: string; exitCode: number; usage: boolean };

interface Row {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** flanneld's outcome (and weft's, unless `weft` says otherwise). */
  want: Outcome;
  note?: string;
}

const USAGE_EXIT = (error: string): Outcome => ({ error, exitCode: 0, usage: true });
const FATAL = (error: string): Outcome => ({ error, exitCode: 1, usage: false });

const ROWS: Row[] = [
  // repeatable flags: each occurrence whole
  { argv: ['--iface', 'eth0', '--iface', 'eth1'], want: { run: { iface: ['eth0', 'eth1'] } } },
  { argv: ['--iface', 'eth0,eth1'], want: { run: { iface: ['eth0,eth1'] } }, note: 'one candidate named "eth0,eth1"' },
  { argv: ['--iface-regex', 'eth[0-9]{1,2}'], want: { run: { ifaceRegex: ['eth[0-9]{1,2}'] } } },
  { argv: ['-iface-regex=eth[0-9]{1,2}', '--iface-regex', '^ens'], want: { run: { ifaceRegex: ['eth[0-9]{1,2}', '^ens'] } } },
  { argv: ['--iface='], want: { run: { iface: [''] } }, note: 'an empty candidate: flanneld then takes the default route' },
  // FLANNELD_*
  { argv: [], env: { FLANNELD_IFACE: 'eth0,eth1' }, want: { run: { iface: ['eth0,eth1'] } }, note: 'one element, no splitting' },
  { argv: [], env: { FLANNELD_IFACE_REGEX: 'eth[0-9]{1,2}' }, want: { run: { ifaceRegex: ['eth[0-9]{1,2}'] } } },
  { argv: ['--iface', 'eth1'], env: { FLANNELD_IFACE: 'eth0' }, want: { run: { iface: ['eth1'] } }, note: 'the command line wins' },
  { argv: [], env: { FLANNELD_ETCD_PREFIX: '' }, want: { run: { etcdPrefix: '/coreos.com/network' } }, note: 'empty values are ignored' },
  {
    argv: [],
    env: { FLANNELD_HEALTHZ_PORT: 'abc' },
    want: { run: { healthzPort: 0 }, warnings: [/^Failed to set flag FLANNELD from env: invalid value "abc" for FLANNELD_HEALTHZ_PORT: parse error/] },
  },
  {
    argv: [],
    env: { FLANNELD_IPTABLES_FORWARD_RULES: 'yes' },
    want: { run: { iptablesForwardRules: true }, warnings: [/invalid value "yes" for FLANNELD_IPTABLES_FORWARD_RULES: parse error; keeping the default$/] },
    note: "flanneld logs it and keeps Go's leftover false; weft keeps the default",
  },
  { argv: [], env: { FLANNELD_IP_MASQ: 'TRUE', FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '0x5a' }, want: { run: { ipMasq: true, subnetLeaseRenewMargin: 90 } } },
  { argv: [], env: { FLANNELD_IP_MASQ: 'tRuE' }, want: { run: { ipMasq: false }, warnings: [/for FLANNELD_IP_MASQ: parse error/] }, note: 'ParseBool is case-exact' },
  {
    argv: [],
    env: { FLANNELD_V: '0x2', FLANNELD_HEALTHZ_PORT: 'x' },
    want: {
      run: { verbosity: 0 },
      warnings: [/for FLANNELD_HEALTHZ_PORT: parse error/, /invalid value "0x2" for FLANNELD_V: strconv\.ParseInt: parsing "0x2": invalid syntax/],
    },
    note: 'klog reads -v as decimal; weft logs every bad variable (flanneld only the last)',
  },
  { argv: [], env: { FLANNELD_V: '2', FLANNELD_LOG_BACKTRACE_AT: 'main.go:10' }, want: { run: { verbosity: 2, logBacktraceAt: 'main.go:10' } } },
  { argv: [], env: { FLANNELD_VERSION: 'true' }, want: { run: {} }, note: 'flanneld looks at --version before env' },
  { argv: [], env: { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '0' }, want: FATAL('Invalid subnet-lease-renew-margin option, out of acceptable range') },
  // help, anywhere among the flags
  { argv: ['-h'], want: { help: true } },
  { argv: ['--iface', 'eth0', '-help'], want: { help: true } },
  { argv: ['--nosuch', '-h'], want: USAGE_EXIT('flag provided but not defined: -nosuch'), note: 'the first error wins' },
  { argv: ['--iface', '-h'], want: { run: { iface: ['-h'] } }, note: "-h is --iface's value" },
  { argv: ['eth0', '-h'], want: { run: {}, warnings: [/^ignoring arguments after the flags .*"eth0" "-h"$/] }, note: 'parsing stopped at eth0' },
  // positional arguments end parsing; the rest is ignored
  { argv: ['--ip-masq', 'false', '--iface', 'eth0'], want: { run: { ipMasq: true, iface: [] }, warnings: [/"false" "--iface" "eth0"$/] } },
  { argv: ['--', '--iface', 'eth0'], want: { run: { iface: [] }, warnings: [/"--iface" "eth0"$/] } },
  { argv: ['-', '--iface', 'eth0'], want: { run: { iface: [] }, warnings: [/"-" "--iface" "eth0"$/] } },
  // Go's int syntax (strconv.ParseInt(s, 0, 64))
  { argv: ['--healthz-port', '0x3c', '--subnet-lease-renew-margin=0o74', '--iptables-resync', '0b101'], want: { run: { healthzPort: 60, subnetLeaseRenewMargin: 60, iptablesResync: 5 } } },
  { argv: ['--healthz-port=010', '--lease-ttl', '1_000'], want: { run: { healthzPort: 8, leaseTtl: 1000 } }, note: 'a leading 0 is octal' },
  { argv: ['--healthz-port', '1__0'], want: USAGE_EXIT('invalid value "1__0" for flag -healthz-port: parse error') },
  { argv: ['--healthz-port', '099'], want: USAGE_EXIT('invalid value "099" for flag -healthz-port: parse error') },
  { argv: ['--healthz-port', '9223372036854775808'], want: USAGE_EXIT('invalid value "9223372036854775808" for flag -healthz-port: value out of range') },
  { argv: ['-v', '3'], want: { run: { verbosity: 3 } } },
  { argv: ['-v=0x3'], want: USAGE_EXIT('invalid value "0x3" for flag -v: strconv.ParseInt: parsing "0x3": invalid syntax') },
  // Go's bool syntax
  { argv: ['--ip-masq=True', '--iptables-forward-rules=0', '--set-node-network-unavailable=F'], want: { run: { ipMasq: true, iptablesForwardRules: false, setNodeNetworkUnavailable: false } } },
  { argv: ['--ip-masq=yes'], want: USAGE_EXIT('invalid boolean value "yes" for -ip-masq: parse error') },
  { argv: ['--ip-masq='], want: USAGE_EXIT('invalid boolean value "" for -ip-masq: parse error') },
  // names and syntax
  { argv: ['-Iface', 'eth0'], want: USAGE_EXIT('flag provided but not defined: -Iface') },
  { argv: ['---iface', 'eth0'], want: USAGE_EXIT('bad flag syntax: ---iface') },
  { argv: ['-=eth0'], want: USAGE_EXIT('bad flag syntax: -=eth0') },
  { argv: ['--iface'], want: USAGE_EXIT('flag needs an argument: -iface') },
  { argv: ['--iface=eth0', '-public-ip', '10.0.0.1', '--iface-can-reach=8.8.8.8'], want: { run: { iface: ['eth0'], publicIp: '10.0.0.1', ifaceCanReach: '8.8.8.8' } } },
  { argv: ['-vmodule=main=2,iface*=3', '-log_backtrace_at=main.go:120'], want: { run: { vmodule: 'main=2,iface*=3', logBacktraceAt: 'main.go:120' } } },
  { argv: ['-vmodule=main'], want: USAGE_EXIT('invalid value "main" for flag -vmodule: syntax error: expect comma-separated list of filename=N') },
  { argv: ['-log_backtrace_at=main:120'], want: USAGE_EXIT('invalid value "main:120" for flag -log_backtrace_at: syntax error: expect file.go:234') },
  // --version: before env, after the whole command line
  { argv: ['--version'], want: { version: true } },
  { argv: ['--version', '--nosuch'], want: USAGE_EXIT('flag provided but not defined: -nosuch') },
  { argv: ['-version=false'], want: { run: {} } },
  // the kube, iptables and masquerade flags
  {
    argv: ['--kube-subnet-mgr', '--kube-api-url', 'https://10.96.0.1:443', '--kubeconfig-file=/k', '--kube-annotation-prefix', 'example.com', '--ip-masq-fully-random-disable', '--ip-blackhole-route', '--public-ipv6', 'fd00::1'],
    want: { run: { kubeSubnetMgr: true, kubeApiUrl: 'https://10.96.0.1:443', kubeconfigFile: '/k', kubeAnnotationPrefix: 'example.com', ipMasqFullyRandomDisable: true, ipBlackholeRoute: true, publicIpv6: 'fd00::1' } },
  },
  // checks after env (flanneld's renew margin; weft's ranges)
  { argv: ['--subnet-lease-renew-margin', '1440'], want: FATAL('Invalid subnet-lease-renew-margin option, out of acceptable range') },
  { argv: ['--lease-ttl', '5'], want: FATAL('invalid --lease-ttl 5: must be 10..604800 seconds'), note: 'weft only' },
  { argv: ['--healthz-port', '99999'], want: FATAL('invalid --healthz-port 99999: must be 0..65535'), note: 'flanneld fails later, in its healthz server' },
  { argv: ['--iptables-resync', '0'], want: FATAL('invalid --iptables-resync 0: must be at least 1 second'), note: "flanneld panics later, in its resync ticker" },
  { argv: ['--status-socket-group', 'weft', '--strict-source', '--allow-any-source'], want: { run: { statusSocketGroup: 'weft', strictSource: true, allowAnySource: true } } },
  { argv: ['--status-socket-group', 'a b'], want: FATAL('invalid --status-socket-group "a b": expected a group name or a numeric gid') },
  // --etcd-endpoints: what etcd's client accepts, as weft's client dials it
  { argv: ['--etcd-endpoints', 'http://10.0.0.1:2379,http://10.0.0.2:2379'], want: { run: { etcdEndpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'] } } },
  { argv: ['--etcd-endpoints', '10.0.0.44:2379, etcd.local:2379'], want: { run: { etcdEndpoints: ['10.0.0.44:2379', 'etcd.local:2379'] } } },
  { argv: ['--etcd-endpoints', 'https://e1:2379/,https://[fd00::1]:2379/v3'], want: { run: { etcdEndpoints: ['https://e1:2379', 'https://[fd00::1]:2379'] } }, note: 'etcd ignores the path' },
  { argv: ['--etcd-endpoints', 'unix:///run/etcd.sock,unix:etcd.sock,unix://rel/etcd.sock'], want: { run: { etcdEndpoints: ['unix:///run/etcd.sock', 'unix:etcd.sock', 'unix:rel/etcd.sock'] } } },
  { argv: [], env: { FLANNELD_ETCD_ENDPOINTS: 'http://127.0.0.1:2379' }, want: { run: { etcdEndpoints: ['http://127.0.0.1:2379'] } } },
  { argv: ['--etcd-endpoints', 'unixs:///run/etcd.sock'], want: FATAL(`invalid --etcd-endpoints "unixs:///run/etcd.sock": unixs:// (TLS over a unix socket) is not supported by weft's etcd client; use unix:///path`) },
  { argv: ['--etcd-endpoints', 'garbage'], want: FATAL('invalid --etcd-endpoints "garbage": expected http(s)://host[:port], host:port or unix:///path') },
  { argv: ['--etcd-endpoints', 'ftp://e1:2379'], want: FATAL('invalid --etcd-endpoints "ftp://e1:2379": unknown scheme ftp://; expected http, https or unix') },
  { argv: ['--etcd-endpoints', 'http://a:2379,https://b:2379'], want: FATAL('invalid --etcd-endpoints "http://a:2379,https://b:2379": all endpoints or none must be https://') },
  { argv: ['--etcd-endpoints', ','], want: FATAL('invalid --etcd-endpoints ",": no endpoint given') },
];

function describeRow(r: Row): string {
  const env = Object.entries(r.env ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('');
  return `${env}flanneld ${r.argv.map((a) => (/^[\w=.,:/-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}${r.note ? ` (${r.note})` : ''}`;
}

function check(got: ParseResult, want: Outcome): void {
  if ('run' in want) {
    assert.equal(got.kind, 'run', JSON.stringify(got));
    if (got.kind !== 'run') return;
    assert.deepEqual(got.flags, { ...defaultFlags(), ...want.run });
    const patterns = want.warnings ?? [];
    assert.equal(got.warnings.length, patterns.length, got.warnings.join('\n'));
    patterns.forEach((p, i) => assert.match(got.warnings[i], p));
  } else if ('help' in want) {
    assert.equal(got.kind, 'help');
    if (got.kind === 'help') assert.match(got.text, /^Usage: weft \[OPTION\]\.\.\.\n.*\n {2}-allow-any-source\n/);
  } else if ('version' in want) {
    assert.deepEqual(got, { kind: 'version' });
  } else {
    assert.equal(got.kind, 'error', JSON.stringify(got));
    if (got.kind !== 'error') return;
    assert.equal(got.message, want.error);
    assert.equal(got.exitCode, want.exitCode);
    assert.equal(got.usage !== undefined, want.usage);
    if (got.usage) assert.match(got.usage, /^Usage: weft \[OPTION\]\.\.\.\n/);
  }
}

describe('flanneld invocations', () => {
  it('the table has at least 30 rows', () => assert.ok(ROWS.length >= 30, String(ROWS.length)));
  for (const row of ROWS) {
    it(describeRow(row), () => check(parseDaemonFlags(row.argv, row.env ?? {}), row.want));
  }
});

describe('defaults and usage', () => {
  // Every flag flanneld defines (main.go init(), plus klog's three copies).
  const FLANNELD = [
    'etcd-endpoints', 'etcd-prefix', 'etcd-keyfile', 'etcd-certfile', 'etcd-cafile', 'etcd-username', 'etcd-password',
    'iface', 'iface-regex', 'iface-can-reach', 'subnet-file', 'public-ip', 'public-ipv6', 'subnet-lease-renew-margin',
    'ip-masq', 'ip-masq-fully-random-disable', 'kube-subnet-mgr', 'kube-api-url', 'kube-annotation-prefix',
    'kubeconfig-file', 'version', 'healthz-ip', 'healthz-port', 'iptables-resync', 'iptables-forward-rules',
    'ip-blackhole-route', 'net-config-path', 'set-node-network-unavailable', 'v', 'vmodule', 'log_backtrace_at',
  ];
  const WEFT = ['store-path', 'status-socket', 'status-socket-group', 'lease-ttl', 'allow-any-source', 'strict-source'];

  it("no flags: flanneld's defaults, and no etcd (the embedded store)", () => {
    const got = parseDaemonFlags([], {});
    assert.equal(got.kind, 'run');
    if (got.kind !== 'run') return;
    assert.equal(got.flags.etcdEndpoints, null);
    assert.equal(got.flags.kubeAnnotationPrefix, 'flannel.alpha.coreos.com');
    assert.equal(got.flags.setNodeNetworkUnavailable, true);
    assert.equal(got.flags.iptablesResync, 5);
    assert.equal(got.flags.iptablesForwardRules, true);
    assert.equal(got.flags.subnetLeaseRenewMargin, 60);
    assert.equal(got.flags.leaseTtl, 86400);
    assert.equal(got.flags.storePath, '/var/lib/weft/leases.db');
    assert.deepEqual(got.warnings, []);
  });

  it('every flag parses, and the usage lists exactly flanneld\'s flags and weft\'s, sorted as Go does', () => {
    const names = [...flagsHelp().matchAll(/^ {2}-(\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(names, [...FLANNELD, ...WEFT].sort());
    for (const name of names) {
      const r = parseDaemonFlags([`-${name}=${name === 'version' ? 'false' : name === 'v' ? '1' : ''}`], {});
      assert.notEqual(r.kind === 'error' && /not defined/.test(r.message), true, name);
    }
  });

  it("prints usage in Go's PrintDefaults shape, defaults shown unless zero", () => {
    const help = flagsHelp();
    assert.match(help, /^ {2}-etcd-prefix string\n {4}\t.*\(default "\/coreos\.com\/network"\)$/m);
    assert.match(help, /^ {2}-iptables-forward-rules\n {4}\t.*\(default true\)$/m);
    assert.match(help, /^ {2}-subnet-lease-renew-margin int\n {4}\t.*\(default 60\)$/m);
    assert.match(help, /^ {2}-iface value\n {4}\t(?:(?!\(default).)*$/m);
    assert.match(help, /^ {2}-ip-masq\n {4}\t(?:(?!\(default).)*$/m);
    assert.match(help, /^ {2}-etcd-password string\n {4}\t.*FLANNELD_ETCD_PASSWORD/m);
  });
});
