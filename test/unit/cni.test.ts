// The delegate config flannel's CNI plugin hands the bridge plugin, checked
// byte for byte against what flannel's source gives (docs/flanneld-parity.md §6.3),
// and flannel's error texts and subnet.env reading rules (§6.1, §6.2).
// lab/cni.ts builds it; the netns test (test/netns/cni.test.ts) runs it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseCidr4 } from '../../src/cidr';
import { formatSubnetEnv } from '../../src/subnet/env';
import {
  type CniConflist,
  CniError,
  CniRuntime,
  flannelDelegateFor,
  KUBE_FLANNEL_CONFLIST,
  labFlannelConflist,
  parseFlannelSubnetEnv,
  pluginStdin,
} from '../../lab/cni';
import { goJson } from '../../lab/go-compat';
import type { Netns } from '../../lab/netns';

// §6.3, from weft's subnet.env for 10.244.1.0/24.
const SECTION_6_3 =
  '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":true,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}';

const WEFT_ENV = formatSubnetEnv({ network: parseCidr4('10.244.0.0/16'), subnet: parseCidr4('10.244.1.0/24'), mtu: 1450, ipMasq: false });
const ENV = (lines: string[]) => lines.map((l) => `${l}\n`).join('');
const BASE = ['FLANNEL_NETWORK=10.244.0.0/16', 'FLANNEL_SUBNET=10.244.1.1/24', 'FLANNEL_MTU=1450', 'FLANNEL_IPMASQ=false'];

/** The delegate for kube-flannel's conflist with the flannel entry changed by `entry`. */
function delegate(envText: string, entry: Record<string, unknown> = {}, list: Partial<CniConflist> = {}): Record<string, unknown> {
  const conflist: CniConflist = { ...KUBE_FLANNEL_CONFLIST, ...list, plugins: [{ ...KUBE_FLANNEL_CONFLIST.plugins[0], ...entry }, KUBE_FLANNEL_CONFLIST.plugins[1]] };
  return JSON.parse(flannelDelegateFor(conflist, envText)) as Record<string, unknown>;
}

/** flannel's error (CNI code 999) for a conflist/subnet.env pair. */
function flannelError(envText: string, entry: Record<string, unknown> = {}, file = '/run/flannel/subnet.env'): string {
  const conflist: CniConflist = { ...KUBE_FLANNEL_CONFLIST, plugins: [{ ...KUBE_FLANNEL_CONFLIST.plugins[0], subnetFile: file, ...entry }] };
  try {
    flannelDelegateFor(conflist, envText);
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    assert.equal(e.plugin, 'flannel');
    assert.equal(e.code, 999);
    return e.msg;
  }
  assert.fail('no error');
}

const missing = (file: string, keys: string) => `failed to load flannel 'subnet.env' file: ${file} is missing ${keys}. Check the flannel pod log for this node.`;
const envError = (err: string) => `failed to load flannel 'subnet.env' file: ${err}. Check the flannel pod log for this node.`;

describe('flannel delegate: the bytes the bridge plugin gets', () => {
  it("is §6.3 byte for byte from kube-flannel's conflist and the subnet.env weft writes", () => {
    assert.equal(WEFT_ENV, ENV(BASE));
    assert.equal(flannelDelegateFor(KUBE_FLANNEL_CONFLIST, WEFT_ENV), SECTION_6_3);
  });

  it("differs in the lab's conflist only by host-local's dataDir, and leaves kube-flannel's alone", () => {
    const before = JSON.stringify(KUBE_FLANNEL_CONFLIST);
    const lab = labFlannelConflist('/tmp/lab-n1', '/tmp/lab/subnet.env');
    const d = JSON.parse(flannelDelegateFor(lab, WEFT_ENV)) as { ipam: Record<string, unknown> };
    assert.equal(d.ipam.dataDir, '/tmp/lab-n1/networks');
    delete d.ipam.dataDir;
    assert.equal(goJson(d), SECTION_6_3);
    assert.equal(JSON.stringify(KUBE_FLANNEL_CONFLIST), before);
    assert.deepEqual(lab.plugins[0], { ...KUBE_FLANNEL_CONFLIST.plugins[0], subnetFile: '/tmp/lab/subnet.env', dataDir: '/tmp/lab-n1/flannel', ipam: { dataDir: '/tmp/lab-n1/networks' } });
    assert.equal(lab.plugins[1], KUBE_FLANNEL_CONFLIST.plugins[1]);
  });

  it('ipMasq is !FLANNEL_IPMASQ, and only exactly "true" is true', () => {
    const masq = (v: string) => delegate(ENV([...BASE.slice(0, 3), `FLANNEL_IPMASQ=${v}`])).ipMasq;
    assert.equal(masq('true'), false);
    assert.equal(masq('false'), true);
    for (const v of ['True', 'TRUE', '1', 't', ' true', 'true ', '']) assert.equal(masq(v), true, JSON.stringify(v));
  });

  it('takes mtu from FLANNEL_MTU, the subnet from FLANNEL_SUBNET with host bits cleared, routes from FLANNEL_NETWORK', () => {
    const d = delegate(ENV(['FLANNEL_NETWORK=10.5.0.0/16', 'FLANNEL_SUBNET=10.5.72.1/24', 'FLANNEL_MTU=8951', 'FLANNEL_IPMASQ=true']));
    assert.equal(d.mtu, 8951);
    assert.deepEqual(d.ipam, { ranges: [[{ subnet: '10.5.72.0/24' }]], routes: [{ dst: '10.5.0.0/16' }], type: 'host-local' });
  });

  it('reads FLANNEL_NETWORK as a comma list, de-duplicated, and the IPv6 keys as flannel does', () => {
    const text = ENV([
      'FLANNEL_NETWORK=10.244.0.0/16,10.245.7.0/16,10.244.0.0/16',
      'FLANNEL_SUBNET=10.244.1.1/24',
      'FLANNEL_IPV6_NETWORK=2001:CAFE:42:0:0::/56',
      'FLANNEL_IPV6_SUBNET=2001:cafe:42:0::1/64',
      'FLANNEL_MTU=1450',
      'FLANNEL_IPMASQ=false',
    ]);
    assert.equal(
      flannelDelegateFor(KUBE_FLANNEL_CONFLIST, text),
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":true,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}],[{"subnet":"2001:cafe:42::/64"}]],"routes":[{"dst":"10.244.0.0/16"},{"dst":"10.245.0.0/16"},{"dst":"2001:cafe:42::/56"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
    // IPv6 only is enough for the network and subnet keys.
    const v6 = delegate(ENV(['FLANNEL_IPV6_NETWORK=fd00::/48', 'FLANNEL_IPV6_SUBNET=fd00:0:0:7::1/64', 'FLANNEL_MTU=1430', 'FLANNEL_IPMASQ=false']));
    assert.deepEqual(v6.ipam, { ranges: [[{ subnet: 'fd00:0:0:7::/64' }]], routes: [{ dst: 'fd00::/48' }], type: 'host-local' });
  });

  it('keeps what the delegate sets (ipMasq, mtu, isGateway, type) and adds isGateway only for bridge', () => {
    const d = delegate(WEFT_ENV, { delegate: { ipMasq: false, mtu: 1400, isGateway: false, hairpinMode: true } });
    assert.deepEqual([d.ipMasq, d.mtu, d.isGateway, d.type], [false, 1400, false, 'bridge']);
    const ipvlan = delegate(WEFT_ENV, { delegate: { type: 'ipvlan', master: 'eth0' } });
    assert.equal(ipvlan.type, 'ipvlan');
    assert.equal(Object.hasOwn(ipvlan, 'isGateway'), false);
    assert.equal(ipvlan.master, 'eth0');
    // No delegate at all: a plain bridge.
    assert.equal(
      flannelDelegateFor({ name: 'cbr0', cniVersion: '0.3.1', plugins: [{ type: 'flannel' }] }, WEFT_ENV),
      '{"cniVersion":"0.3.1","ipMasq":true,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
  });

  it("starts ipam from the netconf's top-level ipam: ranges replaced, routes kept first, as Go's types.Route re-marshals them", () => {
    const d = delegate(WEFT_ENV, {
      ipam: {
        type: 'host-local',
        dataDir: '/x',
        ranges: [[{ subnet: '192.168.0.0/16' }]],
        routes: [{ gw: '10.244.1.9', dst: '192.168.5.7/16', mtu: 0, Priority: 5 }, { dst: '::ffff:10.9.0.0/112' }],
      },
    });
    assert.equal(
      goJson(d.ipam),
      '{"dataDir":"/x","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"192.168.5.7/16","gw":"10.244.1.9","priority":5},{"dst":"10.9.0.0/16"},{"dst":"10.244.0.0/16"}],"type":"host-local"}',
    );
  });

  it("copies runtimeConfig when the flannel entry declares the capability, and cniVersion and name from the list", () => {
    const conflist: CniConflist = { name: 'podnet', cniVersion: '1.0.0', plugins: [{ type: 'flannel', capabilities: { portMappings: true, bandwidth: false } }] };
    const args = { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }], bandwidth: { ingressRate: 1 } };
    const d = JSON.parse(flannelDelegateFor(conflist, WEFT_ENV, args)) as Record<string, unknown>;
    assert.deepEqual(d.runtimeConfig, { portMappings: args.portMappings });
    assert.equal(d.cniVersion, '1.0.0');
    assert.equal(d.name, 'podnet');
    // A list without cniVersion: flannel adds none.
    assert.equal(Object.hasOwn(delegate(WEFT_ENV, {}, { cniVersion: undefined }), 'cniVersion'), false);
  });
});

describe("flannel's errors", () => {
  it('names every missing key, with the subnet file from the netconf', () => {
    const file = '/tmp/node1/subnet.env';
    assert.equal(flannelError('', {}, file), missing(file, 'FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ'));
    assert.equal(flannelError(ENV(BASE.slice(1)), {}, file), missing(file, 'FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK'));
    assert.equal(flannelError(ENV([BASE[0], ...BASE.slice(2)]), {}, file), missing(file, 'FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET'));
    assert.equal(flannelError(ENV([...BASE.slice(0, 2), BASE[3]]), {}, file), missing(file, 'FLANNEL_MTU'));
    assert.equal(flannelError(ENV(BASE.slice(0, 3)), {}, file), missing(file, 'FLANNEL_IPMASQ'));
    // The default path when the netconf names none.
    const conflist: CniConflist = { ...KUBE_FLANNEL_CONFLIST };
    assert.throws(() => flannelDelegateFor(conflist, ENV(BASE.slice(0, 3))), { msg: missing('/run/flannel/subnet.env', 'FLANNEL_IPMASQ') });
  });

  it('matches keys exactly and trims nothing (dotenv syntax is not read)', () => {
    const file = '/run/flannel/subnet.env';
    // Indented, exported, quoted or lower-case keys are other keys: so the key is missing.
    for (const line of [' FLANNEL_MTU=1450', 'export FLANNEL_MTU=1450', 'flannel_mtu=1450', 'FLANNEL_MTU =1450', '# FLANNEL_MTU=1450']) {
      assert.equal(flannelError(ENV([...BASE.filter((l) => !l.startsWith('FLANNEL_MTU')), line])), missing(file, 'FLANNEL_MTU'), line);
    }
    // A value is taken as it stands.
    const withMtu = (v: string) => ENV([BASE[0], BASE[1], `FLANNEL_MTU=${v}`, BASE[3]]);
    assert.equal(flannelError(withMtu(' 1450')), envError('strconv.ParseUint: parsing " 1450": invalid syntax'));
    assert.equal(flannelError(withMtu('"1450"')), envError('strconv.ParseUint: parsing "\\"1450\\"": invalid syntax'));
    assert.equal(flannelError(withMtu('1450\t')), envError('strconv.ParseUint: parsing "1450\\t": invalid syntax'));
    assert.equal(flannelError(withMtu('-1')), envError('strconv.ParseUint: parsing "-1": invalid syntax'));
    assert.equal(flannelError(withMtu('4294967296')), envError('strconv.ParseUint: parsing "4294967296": value out of range'));
    assert.equal(delegate(withMtu('4294967295')).mtu, 4294967295);
    assert.equal(flannelError(ENV(['FLANNEL_NETWORK=10.244.0.0/16 ', ...BASE.slice(1)])), envError('invalid CIDR address: 10.244.0.0/16 '));
    assert.equal(flannelError(ENV(['FLANNEL_NETWORK=10.244.0.0/16,', ...BASE.slice(1)])), envError('invalid CIDR address: '));
    assert.equal(flannelError(ENV([BASE[0], 'FLANNEL_SUBNET=10.244.01.1/24', ...BASE.slice(2)])), envError('invalid CIDR address: 10.244.01.1/24'));
    assert.equal(flannelError(ENV([BASE[0], 'FLANNEL_SUBNET=10.244.1.1', ...BASE.slice(2)])), envError('invalid CIDR address: 10.244.1.1'));
    assert.equal(flannelError(ENV([BASE[0], 'FLANNEL_SUBNET=10.244.1.1/33', ...BASE.slice(2)])), envError('invalid CIDR address: 10.244.1.1/33'));
  });

  it('reads as bufio.Scanner splits: CRLF and no final newline are fine, the last line of a key wins, a too-long line stops it', () => {
    assert.equal(flannelDelegateFor(KUBE_FLANNEL_CONFLIST, BASE.join('\r\n')), SECTION_6_3);
    assert.equal(flannelDelegateFor(KUBE_FLANNEL_CONFLIST, ENV(['FLANNEL_MTU=9000', '', 'junk', 'A=B=C', ...BASE])), SECTION_6_3);
    assert.equal(flannelDelegateFor(KUBE_FLANNEL_CONFLIST, ENV([...BASE, 'OTHER=x'.padEnd(65535, 'x')])), SECTION_6_3);
    assert.equal(flannelError(ENV([...BASE, 'OTHER='.padEnd(65536, 'x')])), envError('bufio.Scanner: token too long'));
    assert.equal(parseFlannelSubnetEnv(ENV(['FLANNEL_SUBNET=10.0.0.0/8', ...BASE]), 'f').subnet, '10.244.1.0/24');
  });

  it('a known key with no "=" crashes flannel\'s plugin: reported as the runtime sees a crash', () => {
    assert.throws(
      () => flannelDelegateFor(KUBE_FLANNEL_CONFLIST, ENV([...BASE, 'FLANNEL_MTU'])),
      (e: unknown) => e instanceof CniError && e.code === 0 && /^netplugin failed: panic: runtime error: index out of range \[1\] with length 1 \(\/run\/flannel\/subnet\.env: FLANNEL_MTU without "="\)$/.test(e.msg),
    );
    // An unknown key without "=" is just skipped.
    assert.equal(flannelDelegateFor(KUBE_FLANNEL_CONFLIST, ENV([...BASE, 'FLANNEL_OTHER'])), SECTION_6_3);
  });

  it("refuses a delegate with name, ipam, or a non-string type, in flannel's words", () => {
    assert.equal(flannelError(WEFT_ENV, { delegate: { type: 7 } }), "'delegate' dictionary, if present, must have (string) 'type' field");
    assert.equal(flannelError(WEFT_ENV, { delegate: { type: null } }), "'delegate' dictionary, if present, must have (string) 'type' field");
    assert.equal(flannelError(WEFT_ENV, { delegate: { name: 'x' } }), "'delegate' dictionary must not have 'name' field, it'll be set by flannel");
    assert.equal(flannelError(WEFT_ENV, { delegate: { ipam: {} } }), "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
    // The subnet file is read (and refused) before the delegate is looked at.
    assert.equal(flannelError('', { delegate: { name: 'x' } }), missing('/run/flannel/subnet.env', 'FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ'));
  });

  it("refuses netconf fields of the wrong JSON type and bad ipam.routes, in Go's decoder's words", () => {
    assert.equal(
      flannelError(WEFT_ENV, { delegate: 'bridge' }),
      'failed to load flannel netconf file: failed to load netconf: json: cannot unmarshal string into Go struct field NetConf.delegate of type map[string]interface {}',
    );
    assert.equal(flannelError(WEFT_ENV, { subnetFile: 5 }), 'failed to load flannel netconf file: failed to load netconf: json: cannot unmarshal number into Go struct field NetConf.subnetFile of type string');
    const routes = (r: unknown) => flannelError(WEFT_ENV, { ipam: { routes: r } });
    const prefix = 'failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: ';
    assert.equal(routes({}), `${prefix}json: cannot unmarshal object into Go value of type []types.Route`);
    assert.equal(routes([{ dst: '10.1.0.0' }]), `${prefix}invalid CIDR address: 10.1.0.0`);
    assert.equal(routes([{ dst: '10.1.0.0/16', gw: 'gateway' }]), `${prefix}invalid IP address: gateway`);
    assert.equal(routes([{ dst: '10.1.0.0/16', mtu: 1.5 }]), `${prefix}json: cannot unmarshal number 1.5 into Go struct field route.mtu of type int`);
    assert.equal(routes(['10.1.0.0/16']), `${prefix}json: cannot unmarshal string into Go value of type types.route`);
  });
});

describe("Go's json.Marshal and libcni's plugin config", () => {
  it('sorts map keys by bytes, escapes as Go does, and prints numbers as Go does', () => {
    assert.equal(goJson({ b: 1, a: { z: [true, null], y: 'x' }, B: 2, é: 3 }), '{"B":2,"a":{"y":"x","z":[true,null]},"b":1,"é":3}');
    assert.equal(goJson('<a href="x">&\u2028\u2029\u0001\u001f\b\f\n\r\t\\\u007f'), '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u2028\\u2029\\u0001\\u001f\\b\\f\\n\\r\\t\\\\\u007f"');
    assert.equal(goJson([0, -0, 1450, 1.5, 1e21, 1e20, 1e-7, 0.000001, 12345678901234567890]), '[0,-0,1450,1.5,1e+21,100000000000000000000,1e-7,0.000001,12345678901234567000]');
  });

  it('gives each plugin the list name and version, the previous result, and runtimeConfig only for what it declares', () => {
    const prev = { cniVersion: '0.3.1', ips: [] };
    const portmap = pluginStdin(KUBE_FLANNEL_CONFLIST, KUBE_FLANNEL_CONFLIST.plugins[1], prev, { portMappings: [{ hostPort: 1 }], bandwidth: {} });
    assert.deepEqual(portmap, { type: 'portmap', capabilities: { portMappings: true }, name: 'cbr0', cniVersion: '0.3.1', prevResult: prev, runtimeConfig: { portMappings: [{ hostPort: 1 }] } });
    const flannel = pluginStdin(KUBE_FLANNEL_CONFLIST, KUBE_FLANNEL_CONFLIST.plugins[0], undefined, { portMappings: [] });
    assert.deepEqual(flannel, { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true }, name: 'cbr0', cniVersion: '0.3.1' });
  });
});

describe('the runtime refuses bad input before running any plugin', () => {
  // Nothing here reaches a namespace or a binary: a namespace that does not exist proves it.
  const nowhere = { name: 'no-such-netns', path: '/run/netns/no-such-netns' } as Netns;
  const runtime = new CniRuntime(nowhere, '/nonexistent');
  const pod = { containerId: 'pod1', netns: nowhere, ifName: 'eth0' };

  it('names the bad conflist field, containerID or interface name', () => {
    assert.throws(() => runtime.add({ ...KUBE_FLANNEL_CONFLIST, name: '' }, pod), { message: 'conflist "": "name" must be a non-empty string' });
    assert.throws(() => runtime.add({ ...KUBE_FLANNEL_CONFLIST, plugins: [] }, pod), { message: 'conflist "cbr0": "plugins" must be a non-empty list' });
    assert.throws(() => runtime.add({ ...KUBE_FLANNEL_CONFLIST, plugins: [{ type: '' }] }, pod), { message: 'conflist "cbr0": plugins[0] needs a string "type"' });
    assert.throws(() => runtime.add({ ...KUBE_FLANNEL_CONFLIST, cniVersion: '0.3.x' }, pod), { message: 'invalid CNI version "0.3.x"' });
    assert.throws(() => runtime.add(KUBE_FLANNEL_CONFLIST, { ...pod, containerId: '-x' }), /^Error: CNI containerID "-x": must start with a letter or digit/);
    assert.throws(() => runtime.add(KUBE_FLANNEL_CONFLIST, { ...pod, ifName: 'a-very-long-name0' }), /^Error: CNI interface name "a-very-long-name0": must be 1 to 15 characters/);
  });

  it('refuses CHECK below spec 0.4.0, and CHECK of a pod it never added', () => {
    assert.throws(() => runtime.check(KUBE_FLANNEL_CONFLIST, pod), { message: 'configuration version "0.3.1" does not support the CHECK command' });
    assert.throws(() => runtime.check({ ...KUBE_FLANNEL_CONFLIST, cniVersion: '1.0.0' }, pod), { message: 'failed to get network "cbr0" cached result: no ADD of pod1/eth0 on record' });
  });

  it('names a plugin that is not installed', () => {
    assert.throws(() => runtime.del({ name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'portmap' }] }, pod), (e: unknown) => e instanceof CniError && e.plugin === 'portmap' && /^failed to find plugin "portmap" in path \[\/nonexistent\]/.test(e.msg));
  });
});
