// Interface selection as flanneld makes it, over a node described below (a
// fake netlink: the selection is a pure function of what netlink says).
// Expected links, addresses and messages are flanneld's (main.go,
// pkg/ipmatch/match.go LookupExtIface, pkg/ip/iface.go).
//
//   idx link    mtu    IPv4 addresses, in the kernel's order  (flags)
//   1   lo      65536  127.0.0.1/8                             permanent
//   2   eth0    1500   10.0.0.5/24                             dynamic (DHCP: no flags)
//                      10.0.0.6/24                             permanent secondary
//                      169.254.3.3/16                          permanent
//   3   eth1    9000   192.168.50.9/24                         permanent deprecated
//                      192.168.50.2/24                         permanent
//   4   ens3    1500   169.254.10.1/16                         permanent (link-local only)
//   5   eth2    1500   (none)
//   6   dummy0  0      172.16.0.1/32                           permanent
//   7   bond0   1500   10.7.0.2/24                             permanent secondary
//                      10.7.0.1/24                             permanent
//
//   routes: default via 10.0.0.1 dev eth0 metric 100, default dev eth1 metric 200
//   ip route get 8.8.8.8 -> dev eth1 src 192.168.50.2; 10.0.0.99 -> dev eth0 (no src)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { compileRe2, IFA_F, NO_MATCH, selectExternalInterface, type IfaceFlags, type IfaceNetlink } from '../../src/daemon/iface';
import type { NetlinkAddr, NetlinkLink, NetlinkRouteGet, NetlinkRouteInfo } from '../../src/native';

const link = (index: number, name: string, mtu: number): NetlinkLink => ({ index, name, mtu, flags: 1, up: true, mac: null });
const addr = (ifindex: number, address: string, prefixLen: number, flags: number): NetlinkAddr => ({ ifindex, address, prefixLen, scope: 0, flags });
const { permanent, secondary, deprecated } = IFA_F;

const LINKS = [link(1, 'lo', 65536), link(2, 'eth0', 1500), link(3, 'eth1', 9000), link(4, 'ens3', 1500), link(5, 'eth2', 1500), link(6, 'dummy0', 0), link(7, 'bond0', 1500)];
const ADDRS = [
  { ...addr(1, '127.0.0.1', 8, permanent), scope: 254 },
  addr(2, '10.0.0.5', 24, 0),
  addr(2, '10.0.0.6', 24, permanent | secondary),
  addr(2, '169.254.3.3', 16, permanent),
  addr(3, '192.168.50.9', 24, permanent | deprecated),
  addr(3, '192.168.50.2', 24, permanent),
  addr(4, '169.254.10.1', 16, permanent),
  addr(6, '172.16.0.1', 32, permanent),
  addr(7, '10.7.0.2', 24, permanent | secondary),
  addr(7, '10.7.0.1', 24, permanent),
];
const route = (o: Partial<NetlinkRouteInfo>): NetlinkRouteInfo => ({ dst: '0.0.0.0', dstLen: 0, table: 254, scope: 0, protocol: 3, onlink: false, ...o });
const ROUTES = [route({ gateway: '10.0.0.1', oif: 2, priority: 100 }), route({ oif: 3, priority: 200 }), route({ dst: '10.0.0.0', dstLen: 24, oif: 2, scope: 253 })];
const ROUTE_GET: Record<string, NetlinkRouteGet> = {
  '8.8.8.8': { dst: '8.8.8.8', oif: 3, prefsrc: '192.168.50.2' },
  '10.0.0.99': { dst: '10.0.0.99', oif: 2 },
};

function fakeNetlink(o: { routes?: NetlinkRouteInfo[] } = {}): IfaceNetlink {
  return {
    linkList: () => LINKS.map((l) => ({ ...l })),
    addrList: () => ADDRS.map((a) => ({ ...a })),
    routeList: () => (o.routes ?? ROUTES).map((r) => ({ ...r })),
    routeGet: (dst: string) => {
      const r = ROUTE_GET[dst];
      if (!r) throw Object.assign(new Error(`ip route get ${dst}: ENETUNREACH (Network is unreachable)`), { code: 'ENETUNREACH' });
      return { ...r };
    },
  };
}

function select(f: Partial<IfaceFlags>, nl = fakeNetlink()) {
  const lines: string[] = [];
  const flags: IfaceFlags = { iface: [], ifaceRegex: [], ifaceCanReach: '', publicIp: '', ...f };
  try {
    const ext = selectExternalInterface(flags, nl, (l) => lines.push(l));
    return { ext, lines, error: undefined };
  } catch (err) {
    return { ext: undefined, lines, error: (err as Error).message };
  }
}
const chosen = (f: Partial<IfaceFlags>, nl?: IfaceNetlink) => {
  const r = select(f, nl);
  assert.equal(r.error, undefined, r.lines.join('\n'));
  return `${r.ext!.name} ${r.ext!.ifaceAddr} ${r.ext!.publicIp}`;
};

describe('no interface flags: --public-ip, else the default route', () => {
  it("takes the first default route's link and its preferred address", () => {
    const r = select({});
    assert.deepEqual(r.ext, { name: 'eth0', index: 2, mtu: 1500, ifaceAddr: '10.0.0.6', publicIp: '10.0.0.6' });
    assert.deepEqual(r.lines, [
      'Determining IP address of default interface',
      'Using interface with name eth0 and address 10.0.0.6',
      'Defaulting external address to interface address (10.0.0.6)',
    ]);
  });
  it('takes the link holding --public-ip, with that address', () => {
    assert.equal(chosen({ publicIp: '10.0.0.5' }), 'eth0 10.0.0.5 10.0.0.5');
  });
  it("fails with flanneld's words when --public-ip is on no link", () => {
    assert.equal(
      select({ publicIp: '203.0.113.7' }).error,
      'Failed to find any valid interface to use: error looking up interface 203.0.113.7: no interface with given IP found',
    );
  });
  it('reads a --public-ip that is no IP as a link name, as flanneld does', () => {
    assert.equal(
      select({ publicIp: 'nonsense' }).error,
      'Failed to find any valid interface to use: error looking up interface nonsense: route ip+net: no such network interface',
    );
  });
  it('fails without a default route', () => {
    const nl = fakeNetlink({ routes: [ROUTES[2]] });
    assert.equal(select({}, nl).error, 'Failed to find any valid interface to use: failed to get default interface: unable to find default route');
  });
  it('fails on a default route without a link', () => {
    const nl = fakeNetlink({ routes: [route({ gateway: '10.0.0.1' })] });
    assert.equal(select({}, nl).error, 'Failed to find any valid interface to use: failed to get default interface: found default route but could not determine interface');
  });
});

describe('address preference on the chosen link', () => {
  it('global before link-local, permanent before dynamic (eth0: the static secondary beats the DHCP primary)', () => {
    assert.equal(chosen({ iface: ['eth0'] }), 'eth0 10.0.0.6 10.0.0.6');
  });
  it('primary before secondary (IFA_F_SECONDARY is the temporary bit)', () => {
    assert.equal(chosen({ iface: ['bond0'] }), 'bond0 10.7.0.1 10.7.0.1');
  });
  it('never a deprecated address', () => {
    assert.equal(chosen({ iface: ['eth1'] }), 'eth1 192.168.50.2 192.168.50.2');
  });
  it('a link-local address when there is nothing else', () => {
    assert.equal(chosen({ iface: ['ens3'] }), 'ens3 169.254.10.1 169.254.10.1');
  });
  it('an --iface IP is taken as given, even a deprecated one', () => {
    assert.equal(chosen({ iface: ['192.168.50.9'] }), 'eth1 192.168.50.9 192.168.50.9');
  });
});

describe('--iface candidates, in order, each fully checked', () => {
  it('skips a link without IPv4 and a missing one, with flanneld\'s lines, and takes the next', () => {
    const r = select({ iface: ['eth2', 'nosuch0', 'eth1'] });
    assert.equal(r.ext?.name, 'eth1');
    assert.deepEqual(r.lines.slice(0, 2), [
      'Could not find valid interface matching eth2: failed to find IPv4 address for interface eth2',
      'Could not find valid interface matching nosuch0: error looking up interface nosuch0: route ip+net: no such network interface',
    ]);
  });
  it('an IP finds the link holding it; an IP on no link is skipped', () => {
    const r = select({ iface: ['10.9.9.9', '10.7.0.2'] });
    assert.equal(`${r.ext?.name} ${r.ext?.ifaceAddr}`, 'bond0 10.7.0.2');
    assert.deepEqual(r.lines.slice(0, 3), [
      'Searching for interface using 10.9.9.9',
      'Could not find valid interface matching 10.9.9.9: error looking up interface 10.9.9.9: no interface with given IP found',
      'Searching for interface using 10.7.0.2',
    ]);
  });
  it('a link with MTU 0 is skipped with flanneld\'s message (which names the address)', () => {
    const r = select({ iface: ['dummy0'] });
    assert.equal(r.error, NO_MATCH);
    assert.equal(r.lines.at(-1), 'Could not find valid interface matching dummy0: failed to determine MTU for 172.16.0.1 interface');
  });
  it('--public-ip goes into the lease while the socket binds the interface address (NAT)', () => {
    const r = select({ iface: ['eth1'], publicIp: '203.0.113.7' });
    assert.equal(`${r.ext?.ifaceAddr} ${r.ext?.publicIp}`, '192.168.50.2 203.0.113.7');
    assert.equal(r.lines.at(-1), 'Using 203.0.113.7 as external address');
  });
  it('an invalid --public-ip fails every candidate, then the chain', () => {
    const r = select({ iface: ['eth1'], publicIp: 'nonsense' });
    assert.equal(r.error, NO_MATCH);
    assert.equal(r.lines.at(-1), 'Could not find valid interface matching eth1: invalid public IP address: nonsense');
  });
  it('an empty candidate means the default route, as in flanneld', () => {
    assert.equal(chosen({ iface: [''] }), 'eth0 10.0.0.6 10.0.0.6');
  });
  it('nothing left: the final error', () => {
    assert.equal(select({ iface: ['nosuch0'] }).error, NO_MATCH);
  });
});

describe('--iface-regex, after every --iface', () => {
  it('matches usable IPs before names, links in order', () => {
    assert.equal(chosen({ ifaceRegex: ['^192\\.168\\.'] }), 'eth1 192.168.50.2 192.168.50.2');
    // 10.7.0.2 is bond0's secondary: it matches, and is the address taken.
    assert.equal(chosen({ ifaceRegex: ['^10\\.7\\.0\\.2$'] }), 'bond0 10.7.0.2 10.7.0.2');
  });
  it('matches names when no IP does, then takes the link\'s preferred address', () => {
    assert.equal(chosen({ ifaceRegex: ['^ens'] }), 'ens3 169.254.10.1 169.254.10.1');
  });
  it('keeps a regex with a comma whole', () => {
    assert.equal(chosen({ ifaceRegex: ['^eth[0-9]{1,2}$'] }), 'eth0 10.0.0.6 10.0.0.6');
  });
  it('never picks lo by 127.0.0.1, and lists what it saw', () => {
    const r = select({ ifaceRegex: ['^127\\.'] });
    assert.equal(r.error, NO_MATCH);
    assert.deepEqual(r.lines, [
      'Could not find valid interface matching ^127\\.: could not match pattern ^127\\. to any of the available network interfaces ' +
        '(lo:[], eth0:[10.0.0.6 10.0.0.5 169.254.3.3], eth1:[192.168.50.2], ens3:[169.254.10.1], eth2:[], dummy0:[172.16.0.1], bond0:[10.7.0.1 10.7.0.2])',
    ]);
  });
  it('a name match on lo fails that regex for want of an IPv4; the next regex is tried', () => {
    const r = select({ ifaceRegex: ['^lo$', 'eth1'] });
    assert.equal(r.ext?.name, 'eth1');
    assert.equal(r.lines[0], 'Could not find valid interface matching ^lo$: failed to find IPv4 address for interface lo');
  });
  it('comes after every --iface, whatever the order on the command line', () => {
    const r = select({ ifaceRegex: ['eth1'], iface: ['nosuch0', 'bond0'] });
    assert.equal(r.ext?.name, 'bond0');
  });
  it("skips a regex RE2 would not compile, with flanneld's line", () => {
    const r = select({ ifaceRegex: ['(?=eth)', 'eth1'] });
    assert.equal(r.ext?.name, 'eth1');
    assert.match(r.lines[0], /^Could not find valid interface matching \(\?=eth\): could not compile the IP address regex '\(\?=eth\)': lookaround/);
  });
  it('takes RE2 flags such as (?i)', () => {
    assert.equal(chosen({ ifaceRegex: ['(?i)^BOND0$'] }), 'bond0 10.7.0.1 10.7.0.1');
  });
});

describe('--iface-can-reach, after --iface and --iface-regex', () => {
  it("takes the route's link and its source address", () => {
    assert.equal(chosen({ ifaceCanReach: '8.8.8.8' }), 'eth1 192.168.50.2 192.168.50.2');
  });
  it("takes the link's preferred address when the route has no source", () => {
    assert.equal(chosen({ ifaceCanReach: '10.0.0.99' }), 'eth0 10.0.0.6 10.0.0.6');
  });
  it('is tried only once --iface and --iface-regex have failed', () => {
    const r = select({ iface: ['nosuch0'], ifaceRegex: ['^wlan'], ifaceCanReach: '8.8.8.8' });
    assert.equal(r.ext?.name, 'eth1');
    assert.equal(r.lines.length, 5, r.lines.join('\n'));
    assert.equal(select({ iface: ['bond0'], ifaceCanReach: '8.8.8.8' }).ext?.name, 'bond0');
  });
  it('an unreachable address ends in the final error, the route error logged', () => {
    const r = select({ ifaceCanReach: '9.9.9.9' });
    assert.equal(r.error, NO_MATCH);
    assert.equal(
      r.lines.at(-1),
      'Could not find valid interface matching ifaceCanReach: 9.9.9.9: failed to get ifcanreach based interface: couldn\'t lookup route to 9.9.9.9: ip route get 9.9.9.9: ENETUNREACH (Network is unreachable)',
    );
  });
  it('an address that is no IPv4 is named', () => {
    assert.match(select({ ifaceCanReach: 'example.com' }).lines.at(-1)!, /ifaceCanReach: example\.com: .*example\.com is not an IPv4 address$/);
  });
});

describe("Go's RE2 syntax in a JS RegExp", () => {
  const matches = (re: string, s: string) => compileRe2(re).test(s);
  it('translates leading flags, named groups, \\A \\z, \\Q..\\E and POSIX classes', () => {
    assert.ok(matches('(?i)^ETH0$', 'eth0'));
    assert.ok(matches('(?i)(?s)^a.b$', 'A\nB'));
    assert.ok(matches('^(?P<kind>eth|ens)[0-9]+$', 'ens3'));
    assert.ok(matches('\\Aeth0\\z', 'eth0'));
    assert.ok(!matches('\\Aeth0\\z', 'eth0\n'));
    assert.ok(matches('^\\Q10.0.0.1\\E$', '10.0.0.1'));
    assert.ok(!matches('^\\Q10.0.0.1\\E$', '10a0b0c1'));
    assert.ok(matches('^[[:alpha:]]+[[:digit:]]$', 'eth0'));
    assert.ok(!matches('^[[:alpha:]]+$', 'eth0'));
    assert.ok(matches('^[]a]+$', 'a]a'));
  });
  it('refuses what RE2 refuses and what JS cannot express', () => {
    for (const [re, why] of [
      ['(?=eth)', /lookaround/],
      ['(eth)\\1', /back reference/],
      ['(?U)eth.+', /flag \(\?U\)/],
      ['eth(?i)0', /flag group/],
      ['\\pL+', /Unicode class/],
      ['[[:^alpha:]]', /class/],
      ['eth[0-9', /missing closing \]/],
    ] as const) {
      assert.throws(() => compileRe2(re), why, re);
    }
  });
});
