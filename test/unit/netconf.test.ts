// net-conf.json as flannel reads it: Go's JSON decoding, CheckNetworkConfig's
// defaults and its messages word for word (docs/flannel.md §1), Backend decoding,
// and `weft config check`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { formatCidr4, formatIp4 } from '../../src/cidr';
import { checkNetConf, loadNetConf, netConfToJSON, parseNetConf } from '../../src/config/netconf';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');

const load = (o: unknown) => loadNetConf(typeof o === 'string' ? o : JSON.stringify(o));
const fails = (o: unknown, message: string) => assert.throws(() => load(o), (e: Error) => {
  assert.equal(e.message, message);
  return true;
});
const range = (o: unknown) => {
  const c = load(o);
  return [formatCidr4(c.Network), c.SubnetLen, formatIp4(c.SubnetMin), formatIp4(c.SubnetMax)];
};

describe('net-conf defaults (CheckNetworkConfig)', () => {
  it('a /16 gets /24 subnets from the second to the last', () => {
    assert.deepEqual(range({ Network: '10.5.0.0/16' }), ['10.5.0.0/16', 24, '10.5.1.0', '10.5.255.0']);
  });
  it('SubnetLen is 24 down to a /22, then prefix + 2', () => {
    assert.deepEqual(range({ Network: '10.5.0.0/22' }), ['10.5.0.0/22', 24, '10.5.1.0', '10.5.3.0']);
    assert.deepEqual(range({ Network: '10.5.0.0/23' }), ['10.5.0.0/23', 25, '10.5.0.128', '10.5.1.128']);
    assert.deepEqual(range({ Network: '10.5.0.0/28' }), ['10.5.0.0/28', 30, '10.5.0.4', '10.5.0.12']);
    assert.deepEqual(range({ Network: '10.0.0.0/8' }), ['10.0.0.0/8', 24, '10.0.1.0', '10.255.255.0']);
  });
  it('an explicit SubnetLen sets the step of the defaults', () => {
    assert.deepEqual(range({ Network: '10.5.0.0/16', SubnetLen: 20 }), ['10.5.0.0/16', 20, '10.5.16.0', '10.5.240.0']);
  });
  it('SubnetMax at the top of the address space (Go wraps Next() to 0)', () => {
    assert.deepEqual(range({ Network: '255.255.0.0/16' }), ['255.255.0.0/16', 24, '255.255.1.0', '255.255.255.0']);
  });
  it('explicit SubnetMin/SubnetMax are kept, even inverted (flannel has no Min <= Max check)', () => {
    assert.deepEqual(range({ Network: '10.5.0.0/16', SubnetMin: '10.5.10.0', SubnetMax: '10.5.20.0' }).slice(2), ['10.5.10.0', '10.5.20.0']);
    assert.deepEqual(range({ Network: '10.5.0.0/16', SubnetMin: '10.5.20.0', SubnetMax: '10.5.10.0' }).slice(2), ['10.5.20.0', '10.5.10.0']);
  });
  it('SubnetMin 0.0.0.0 means unset', () => {
    assert.equal(range({ Network: '10.5.0.0/16', SubnetMin: '0.0.0.0' })[2], '10.5.1.0');
  });
  it('ParseCIDR masks host bits', () => {
    assert.equal(range({ Network: '10.3.1.5/16' })[0], '10.3.0.0/16');
  });
  it('EnableIPv4 defaults to true; JSON null leaves a field as it was', () => {
    const c = parseNetConf('{"Network":"10.5.0.0/16","EnableIPv4":null,"SubnetLen":null}');
    assert.equal(c.EnableIPv4, true);
    assert.equal(c.SubnetLen, 0);
    assert.equal(checkNetConf(c).SubnetLen, 24);
  });
  it('checkNetConf does not change its argument', () => {
    const c = parseNetConf('{"Network":"10.5.0.0/16"}');
    checkNetConf(c);
    assert.equal(c.SubnetLen, 0);
    assert.equal(c.SubnetMin, 0);
  });
});

describe("net-conf errors, flannel's words", () => {
  it('Network missing, empty object, JSON null, or 0.0.0.0/0', () => {
    const msg = 'please define a correct Network parameter in the flannel config';
    fails({}, msg);
    fails('null', msg);
    fails({ Network: '0.0.0.0/0' }, msg);
    fails({ Network: '10.0.0.0/0' }, msg); // masked to 0.0.0.0/0
    fails({ SubnetLen: 24 }, msg); // the Network check comes first
  });
  it('SubnetLen bounds', () => {
    fails({ Network: '10.3.0.0/16', SubnetLen: 31 }, 'SubnetLen must be less than /31');
    fails({ Network: '10.3.0.0/16', SubnetLen: 17 }, 'network must be able to accommodate at least four subnets');
    assert.equal(load({ Network: '10.3.0.0/16', SubnetLen: 18 }).SubnetLen, 18);
    assert.equal(load({ Network: '10.3.0.0/16', SubnetLen: 30 }).SubnetLen, 30);
    fails({ Network: '10.3.0.0/29' }, 'network is too small. Minimum useful network prefix is /28');
    // With an explicit SubnetLen a /29 is only checked against SubnetLen.
    fails({ Network: '10.3.0.0/29', SubnetLen: 30 }, 'network must be able to accommodate at least four subnets');
  });
  it('SubnetMin / SubnetMax outside the Network', () => {
    fails({ Network: '10.3.0.0/16', SubnetMin: '192.168.1.0' }, 'SubnetMin is not in the range of the Network');
    fails({ Network: '10.3.0.0/16', SubnetMax: '192.168.1.0' }, 'SubnetMax is not in the range of the Network');
    // Range before boundary: Min's range, then Max's range, then the alignments.
    fails({ Network: '10.3.0.0/16', SubnetMin: '10.3.1.1', SubnetMax: '192.168.1.0' }, 'SubnetMax is not in the range of the Network');
  });
  it('SubnetMin / SubnetMax off a SubnetLen boundary', () => {
    fails({ Network: '10.3.0.0/16', SubnetMin: '10.3.1.1' }, 'SubnetMin is not on a SubnetLen boundary: 10.3.1.1');
    fails({ Network: '10.3.0.0/16', SubnetMax: '10.3.250.128' }, 'SubnetMax is not on a SubnetLen boundary: 10.3.250.128');
    fails({ Network: '10.3.0.0/16', SubnetLen: 20, SubnetMin: '10.3.1.0' }, 'SubnetMin is not on a SubnetLen boundary: 10.3.1.0');
  });
  it('addresses that do not parse', () => {
    fails({ Network: '10.3.0.0' }, 'invalid CIDR address: 10.3.0.0');
    fails({ Network: '10.3.0.0/33' }, 'invalid CIDR address: 10.3.0.0/33');
    fails({ Network: 'garbage' }, 'invalid CIDR address: garbage');
    fails({ Network: 10 }, 'invalid CIDR address: 10');
    fails({ Network: null }, 'invalid CIDR address: null');
    fails({ Network: 'fd00::/64' }, 'invalid IPv4 CIDR format');
    fails({ Network: '10.3.0.0/16', SubnetMin: 'garbage' }, 'invalid IP address format');
    fails({ Network: '10.3.0.0/16', SubnetMin: '10.3.1.0/24' }, 'invalid IP address format');
    fails({ Network: '10.3.0.0/16', SubnetMax: 'fd00::1' }, 'invalid IPv4 address format');
  });
  it('IPv6: refused when enabled, ignored when not', () => {
    fails({ Network: '10.3.0.0/16', EnableIPv6: true, IPv6Network: 'fd00::/48' }, 'IPv6 is not supported by weft yet: set EnableIPv6 to false (weft runs IPv4 networks only)');
    assert.equal(load({ Network: '10.3.0.0/16', EnableIPv6: false, IPv6Network: 'fd00::/48', IPv6SubnetLen: 64 }).EnableIPv6, false);
    fails({ EnableIPv4: false }, 'EnableIPv4 is false, but weft runs IPv4 networks only');
  });
  it('the v4 checks still come before the IPv6 refusal (flannel order)', () => {
    fails({ Network: '10.3.0.0/29', EnableIPv6: true }, 'network is too small. Minimum useful network prefix is /28');
  });
});

describe("net-conf decoding (Go's encoding/json)", () => {
  it('keys are case-insensitive and unknown keys are ignored', () => {
    const c = load({ network: '10.7.0.0/16', SUBNETLEN: 26, subnetmin: '10.7.0.64', Whatever: [1, 2], backend: { type: 'VXLAN', vni: 7 } });
    assert.deepEqual(
      [formatCidr4(c.Network), c.SubnetLen, formatIp4(c.SubnetMin), formatIp4(c.SubnetMax)],
      ['10.7.0.0/16', 26, '10.7.0.64', '10.7.255.192'],
    );
    assert.deepEqual(c.Backend, { Type: 'vxlan', VNI: 7, Port: 8472, DirectRouting: false });
  });
  it('the last occurrence of a key wins, whatever its case', () => {
    assert.equal(formatCidr4(load('{"Network":"10.1.0.0/16","network":"10.2.0.0/16"}').Network), '10.2.0.0/16');
    assert.equal(formatCidr4(load('{"network":"10.1.0.0/16","Network":"10.2.0.0/16"}').Network), '10.2.0.0/16');
  });
  it('wrong types name the field, in Go\'s words', () => {
    fails({ Network: '10.3.0.0/16', SubnetLen: '24' }, 'json: cannot unmarshal string into Go struct field Config.SubnetLen of type uint');
    fails({ Network: '10.3.0.0/16', SubnetLen: -1 }, 'json: cannot unmarshal number -1 into Go struct field Config.SubnetLen of type uint');
    fails({ Network: '10.3.0.0/16', SubnetLen: 24.5 }, 'json: cannot unmarshal number 24.5 into Go struct field Config.SubnetLen of type uint');
    fails({ Network: '10.3.0.0/16', EnableIPv6: 'false' }, 'json: cannot unmarshal string into Go struct field Config.EnableIPv6 of type bool');
    fails({ Network: '10.3.0.0/16', enableipv4: 1 }, 'json: cannot unmarshal number into Go struct field Config.EnableIPv4 of type bool');
    fails({ Network: '10.3.0.0/16', EnableNFTables: 'yes' }, 'json: cannot unmarshal string into Go struct field Config.EnableNFTables of type bool');
    fails('[1]', 'json: cannot unmarshal array into Go value of type subnet.Config');
    fails('"x"', 'json: cannot unmarshal string into Go value of type subnet.Config');
  });
  it("a JSON syntax error says so and carries the parser's reason", () => {
    assert.throws(() => load('{"Network": "10.3.0.0/16",'), (e: Error) => {
      assert.match(e.message, /^net-conf is not valid JSON: .+/);
      assert.ok(e.message.length > 'net-conf is not valid JSON: '.length + 5);
      return true;
    });
  });
});

describe('Backend', () => {
  const net = { Network: '10.3.0.0/16' };
  it('missing: udp on port 8285', () => {
    assert.deepEqual(load(net).Backend, { Type: 'udp', Port: 8285 });
    assert.equal(parseNetConf(JSON.stringify(net)).BackendType, 'udp');
  });
  it('without Type, or null: flannel\'s "unknown backend type: " (trailing space)', () => {
    fails({ ...net, Backend: {} }, 'unknown backend type: ');
    fails({ ...net, Backend: { VNI: 1 } }, 'unknown backend type: ');
    fails({ ...net, Backend: null }, 'unknown backend type: ');
    fails({ ...net, Backend: { Type: null } }, 'unknown backend type: ');
  });
  it('not an object', () => {
    fails({ ...net, Backend: 'vxlan' }, 'error decoding Backend property of config: json: cannot unmarshal string into Go value of type struct { Type string }');
    fails({ ...net, Backend: [] }, 'error decoding Backend property of config: json: cannot unmarshal array into Go value of type struct { Type string }');
    fails({ ...net, Backend: { Type: 5 } }, 'error decoding Backend property of config: json: cannot unmarshal number into Go struct field .Type of type string');
  });
  it('a Backend decoding error comes before the Network checks (ParseConfig runs first)', () => {
    fails({ Backend: 'vxlan' }, 'error decoding Backend property of config: json: cannot unmarshal string into Go value of type struct { Type string }');
  });
  it('an unknown Type comes after the Network checks (flannel looks the backend up last)', () => {
    fails({ Backend: { Type: 'bogus' } }, 'please define a correct Network parameter in the flannel config');
    fails({ ...net, Backend: { Type: 'bogus' } }, 'unknown backend type: bogus');
    fails({ ...net, Backend: { Type: 'BoGuS' } }, 'unknown backend type: bogus');
  });
  it("flannel's other backends are refused as unsupported by weft; ones flannel dropped are unknown, as there", () => {
    for (const t of ['wireguard', 'ipip', 'alloc', 'ipsec', 'IPIP']) {
      fails({ ...net, Backend: { Type: t } }, `backend type "${t.toLowerCase()}" is not supported by weft: weft supports udp, vxlan and host-gw`);
    }
    for (const t of ['gce', 'aws-vpc', 'ali-vpc']) fails({ ...net, Backend: { Type: t } }, `unknown backend type: ${t}`);
  });
  it('host-gw: no options', () => {
    assert.deepEqual(load({ ...net, Backend: { Type: 'Host-GW', Port: 1 } }).Backend, { Type: 'host-gw' });
  });
  it('Type is matched without regard to case, as flannel lowercases it', () => {
    assert.equal(load({ ...net, Backend: { Type: 'UDP' } }).Backend.Type, 'udp');
    assert.equal(load({ ...net, Backend: { Type: 'VxLaN' } }).Backend.Type, 'vxlan');
  });
  it('udp: Port', () => {
    assert.deepEqual(load({ ...net, Backend: { Type: 'udp', port: 9000, MTU: 1400 } }).Backend, { Type: 'udp', Port: 9000 });
    fails({ ...net, Backend: { Type: 'udp', Port: '9000' } }, 'error decoding UDP backend config: json: cannot unmarshal string into Go struct field .Port of type int');
    fails({ ...net, Backend: { Type: 'udp', Port: 0 } }, 'error decoding UDP backend config: Port must be between 1 and 65535, got 0');
    fails({ ...net, Backend: { Type: 'udp', Port: 70000 } }, 'error decoding UDP backend config: Port must be between 1 and 65535, got 70000');
  });
  it('vxlan: defaults VNI 1, Port 8472 (also for Port 0), no MTU override', () => {
    assert.deepEqual(load({ ...net, Backend: { Type: 'vxlan' } }).Backend, { Type: 'vxlan', VNI: 1, Port: 8472, DirectRouting: false });
    assert.deepEqual(load({ ...net, Backend: { Type: 'vxlan', Port: 0, MTU: 0 } }).Backend, { Type: 'vxlan', VNI: 1, Port: 8472, DirectRouting: false });
    assert.deepEqual(
      load({ ...net, Backend: { Type: 'vxlan', VNI: 16777215, Port: 4789, mtu: 9000, GBP: false, Learning: false, DirectRouting: true, MacPrefix: '0E-2A' } }).Backend,
      { Type: 'vxlan', VNI: 16777215, Port: 4789, MTU: 9000, DirectRouting: true },
    );
  });
  it('vxlan: types and ranges, naming the field', () => {
    const p = 'error decoding VXLAN backend config: ';
    fails({ ...net, Backend: { Type: 'vxlan', VNI: '1' } }, p + 'json: cannot unmarshal string into Go struct field .VNI of type int');
    fails({ ...net, Backend: { Type: 'vxlan', VNI: 1.5 } }, p + 'json: cannot unmarshal number 1.5 into Go struct field .VNI of type int');
    fails({ ...net, Backend: { Type: 'vxlan', VNI: 0 } }, p + 'VNI must be between 1 and 16777215, got 0');
    fails({ ...net, Backend: { Type: 'vxlan', VNI: 16777216 } }, p + 'VNI must be between 1 and 16777215, got 16777216');
    fails({ ...net, Backend: { Type: 'vxlan', Port: -1 } }, p + 'Port must be between 0 and 65535, got -1');
    fails({ ...net, Backend: { Type: 'vxlan', MTU: 100 } }, p + 'MTU must be between 576 and 65535, got 100');
    fails({ ...net, Backend: { Type: 'vxlan', DirectRouting: 'no' } }, p + 'json: cannot unmarshal string into Go struct field .DirectRouting of type bool');
  });
  it('vxlan: GBP and Learning true are refused by name, saying why', () => {
    fails({ ...net, Backend: { Type: 'vxlan', GBP: true } }, 'vxlan backend: GBP (group based policy) is not supported by weft; remove it or set it to false');
    fails({ ...net, Backend: { Type: 'vxlan', Learning: true } }, 'vxlan backend: Learning is not supported by weft (peers come from leases only); remove it or set it to false');
  });
});

describe('weft config check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-netconf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (file: string) => {
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', file], { encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  it('prints the normalized config and exits 0', () => {
    const f = join(dir, 'good.json');
    writeFileSync(f, '{"network":"10.5.3.7/16","Backend":{"Type":"vxlan","MTU":1500}}');
    const r = run(f);
    assert.equal(r.code, 0);
    assert.equal(r.err, '');
    assert.deepEqual(JSON.parse(r.out), {
      Network: '10.5.0.0/16',
      SubnetLen: 24,
      SubnetMin: '10.5.1.0',
      SubnetMax: '10.5.255.0',
      EnableIPv4: true,
      EnableIPv6: false,
      EnableNFTables: false,
      Backend: { Type: 'vxlan', VNI: 1, Port: 8472, MTU: 1500, DirectRouting: false },
    });
    assert.equal(r.out, netConfToJSON(load('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","MTU":1500}}')) + '\n');
  });
  it('prints one error line naming the file and exits 1', () => {
    const f = join(dir, 'bad.json');
    writeFileSync(f, '{"Network":"10.5.0.0/16","SubnetLen":31}');
    assert.deepEqual(run(f), { code: 1, out: '', err: `weft: ${f}: SubnetLen must be less than /31\n` });
  });
  it('says when the file cannot be read', () => {
    const f = join(dir, 'missing.json');
    const r = run(f);
    assert.equal(r.code, 1);
    assert.equal(r.err, `weft: ${f}: cannot read file: ENOENT\n`);
  });
});
