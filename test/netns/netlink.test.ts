// The rtnetlink verbs against the real kernel. Needs root and `ip`.
//
// Each test gets a fresh namespace of its own, removed when the test ends
// (and again in `after`, for any a crash left behind):
//
//   netns weftnl-<pid>-<n>
//   +-------------------------------------------------+
//   |  lo                                             |
//   |  v0 (10.9.0.1/24) <--veth--> v1 (10.8.0.1/24)   |
//   +-------------------------------------------------+
//
// A Node process can't enter a namespace, so each test runs a small child
// under `ip netns exec` that calls addon.netlink and prints JSON; the test
// asserts on that and cross-checks with `ip -j`.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { NativeNetlink } from '../../src/native/netlink-types';

const PREFIX = `weftnl-${process.pid}-`;
const INDEX = path.resolve(__dirname, '../../src/native/index.js');
const CHILD = path.join(os.tmpdir(), `${PREFIX}child.js`);

const skip =
  process.getuid?.() !== 0 ? 'needs root' : !hasIp() ? 'needs iproute2 (ip)' : false;

function hasIp(): boolean {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

type Verb = keyof NativeNetlink;
type Step = [Verb, ...unknown[]];
interface ErrInfo {
  name: string;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  extAck?: string;
}
type Result = { ok: unknown } | { err: ErrInfo };

const CHILD_SOURCE = `
const { addon } = require(${JSON.stringify(INDEX)});
const steps = JSON.parse(process.argv[2]);
const out = [];
for (const [verb, ...args] of steps) {
  try {
    const v = addon.netlink[verb](...args);
    out.push({ ok: v === undefined ? null : v });
  } catch (e) {
    out.push({ err: { name: e.name, message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, extAck: e.extAck } });
  }
}
process.stdout.write(JSON.stringify(out));
`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ipJson<T>(ns: string, ...args: string[]): T {
  return JSON.parse(ip('-j', '-n', ns, ...args)) as T;
}

// Runs the steps in one child inside `ns`; one result per step.
function inNs(ns: string, steps: Step[]): Result[] {
  const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, CHILD, JSON.stringify(steps)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const results = JSON.parse(out) as Result[];
  assert.equal(results.length, steps.length);
  return results;
}

function ok<T>(r: Result, what = ''): T {
  if ('err' in r) assert.fail(`${what} failed: ${r.err.message}`);
  return r.ok as T;
}

function err(r: Result, code: string, syscall: string | RegExp, extAck?: RegExp): ErrInfo {
  assert.ok('err' in r, `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.err.code, code, r.err.message);
  if (typeof syscall === 'string') assert.equal(r.err.syscall, syscall);
  else assert.match(r.err.syscall ?? '', syscall);
  if (extAck) assert.match(r.err.extAck ?? '', extAck);
  return r.err;
}

let nsCount = 0;

// A fresh namespace with the veth pair v0/v1 (both down), removed after fn.
async function withNs(fn: (ns: string, v0: number, v1: number) => void | Promise<void>): Promise<void> {
  const ns = `${PREFIX}${nsCount++}`;
  ip('netns', 'add', ns);
  try {
    ip('-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    const [l0, l1] = inNs(ns, [['linkGet', 'v0'], ['linkGet', 'v1']]).map((r) => ok<{ index: number }>(r));
    await fn(ns, l0.index, l1.index);
  } finally {
    ip('netns', 'del', ns);
  }
}

function ourNamespaces(): string[] {
  return ip('netns', 'list')
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(PREFIX));
}

interface IpAddr {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string; label?: string }>;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
  flags: string[];
}

describe('netlink verbs in a network namespace', { skip }, () => {
  before(() => {
    fs.writeFileSync(CHILD, CHILD_SOURCE);
  });

  after(() => {
    for (const ns of ourNamespaces()) ip('netns', 'del', ns);
    fs.rmSync(CHILD, { force: true });
  });

  it('gets and lists links, ENODEV for a missing one', () =>
    withNs((ns, v0) => {
      const [byName, byIndex, list, missing, missingIndex] = inNs(ns, [
        ['linkGet', 'v0'],
        ['linkGet', v0],
        ['linkList'],
        ['linkGet', 'nope0'],
        ['linkGet', 4000],
      ]);
      const link = ok<{ index: number; name: string; mtu: number; up: boolean; mac: string; kind: string }>(byName);
      assert.equal(link.index, v0);
      assert.equal(link.name, 'v0');
      assert.equal(link.mtu, 1500);
      assert.equal(link.up, false);
      assert.equal(link.kind, 'veth');
      const [shown] = ipJson<Array<{ address: string }>>(ns, 'link', 'show', 'v0');
      assert.equal(link.mac, shown.address);
      assert.deepEqual(ok(byIndex), link);
      const names = ok<Array<{ name: string }>>(list).map((l) => l.name).sort();
      assert.deepEqual(names, ['lo', 'v0', 'v1']);
      err(missing, 'ENODEV', 'link nope0');
      err(missingIndex, 'ENODEV', 'link 4000');
    }));

  it('sets a link up and its MTU; the kernel says why a bad MTU fails', () =>
    withNs((ns, v0) => {
      const [mtu, up, got, bad, down, gotDown] = inNs(ns, [
        ['linkSetMtu', v0, 1400],
        ['linkSetUp', v0, true],
        ['linkGet', v0],
        ['linkSetMtu', v0, 10],
        ['linkSetUp', v0, false],
        ['linkGet', v0],
      ]);
      ok(mtu);
      ok(up);
      assert.equal(ok<{ mtu: number }>(got).mtu, 1400);
      assert.equal(ok<{ up: boolean }>(got).up, true);
      const [shown] = ipJson<Array<{ mtu: number; flags: string[] }>>(ns, 'link', 'show', 'v0');
      assert.equal(shown.mtu, 1400);
      err(bad, 'EINVAL', 'ip link set dev v0 mtu 10', /mtu/i);
      ok(down);
      assert.equal(ok<{ up: boolean }>(gotDown).up, false);
    }));

  it('adds, replaces, lists and deletes an address', () =>
    withNs((ns, v0, v1) => {
      const [add, again, replace, list, all] = inNs(ns, [
        ['addrAdd', v0, '10.9.0.1', 24],
        ['addrAdd', v0, '10.9.0.1', 24],
        ['addrReplace', v0, '10.9.0.1', 24],
        ['addrList', v0],
        ['addrList'],
      ]);
      ok(add);
      err(again, 'EEXIST', 'ip addr add 10.9.0.1/24 dev v0', /already assigned/);
      ok(replace);
      // `ip addr add` without lifetimes makes a permanent address (IFA_F_PERMANENT 0x80).
      assert.deepEqual(ok(list), [{ ifindex: v0, address: '10.9.0.1', prefixLen: 24, scope: 0, label: 'v0', flags: 0x80 }]);
      const everywhere = ok<Array<{ ifindex: number; address: string }>>(all);
      assert.ok(everywhere.some((a) => a.ifindex === v0 && a.address === '10.9.0.1'));
      assert.ok(!everywhere.some((a) => a.ifindex === v1));
      const [shown] = ipJson<IpAddr[]>(ns, 'addr', 'show', 'dev', 'v0');
      assert.deepEqual(
        shown.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
        ['10.9.0.1/24'],
      );

      // The flags interface selection ranks by, as the kernel sets them:
      // a second address in the same prefix is secondary (0x01), one with
      // preferred_lft 0 deprecated (0x20), one with a lifetime not permanent.
      ip('-n', ns, 'addr', 'add', '10.9.0.7/24', 'dev', 'v0');
      ip('-n', ns, 'addr', 'add', '10.9.1.2/24', 'dev', 'v0', 'preferred_lft', '0');
      ip('-n', ns, 'addr', 'add', '10.9.2.3/24', 'dev', 'v0', 'valid_lft', '3600', 'preferred_lft', '3600');
      const [flagged] = inNs(ns, [['addrList', v0]]);
      const flagsOf = Object.fromEntries(ok<Array<{ address: string; flags: number }>>(flagged).map((a) => [a.address, a.flags]));
      assert.deepEqual(flagsOf, { '10.9.0.1': 0x80, '10.9.0.7': 0x81, '10.9.1.2': 0xa0, '10.9.2.3': 0 });
      for (const a of ['10.9.0.7/24', '10.9.1.2/24', '10.9.2.3/24']) ip('-n', ns, 'addr', 'del', a, 'dev', 'v0');

      const [del, delAgain, remaining] = inNs(ns, [
        ['addrDel', v0, '10.9.0.1', 24],
        ['addrDel', v0, '10.9.0.1', 24],
        ['addrList', v0],
      ]);
      ok(del);
      err(delAgain, 'EADDRNOTAVAIL', 'ip addr del 10.9.0.1/24 dev v0');
      assert.deepEqual(ok(remaining), []);
    }));

  it('adds, replaces, lists, gets and deletes routes', () =>
    withNs((ns, v0) => {
      const route = { dst: '10.244.3.0', dstLen: 24, oif: v0 };
      const res = inNs(ns, [
        ['linkSetUp', v0, true],
        ['addrAdd', v0, '10.9.0.1', 24],
        ['routeAdd', route],
        ['routeAdd', route],
        // Same key (dst, table, metric): replaced in place.
        ['routeReplace', { ...route, gateway: '10.9.0.7', prefsrc: '10.9.0.1' }],
        ['routeAdd', { dst: '10.244.9.0', dstLen: 24, gateway: '10.244.9.0', oif: v0 }],
        ['routeAdd', { dst: '10.244.9.0', dstLen: 24, gateway: '10.244.9.0', oif: v0, onlink: true, priority: 20 }],
        ['routeAdd', { dst: '10.244.3.1', dstLen: 24, oif: v0 }],
        ['routeAdd', { dst: '10.100.0.0', dstLen: 16, oif: v0, table: 100 }],
        ['routeList'],
        ['routeGet', '10.244.3.5'],
        ['routeGet', '10.9.0.3'],
      ]);
      ok(res[0]);
      ok(res[1]);
      ok(res[2], 'routeAdd');
      err(res[3], 'EEXIST', 'ip route add 10.244.3.0/24 dev v0');
      ok(res[4], 'routeReplace');
      err(res[5], 'ENETUNREACH', /^ip route add 10\.244\.9\.0\/24 via 10\.244\.9\.0/, /gateway|nexthop/i);
      ok(res[6], 'onlink routeAdd');
      err(res[7], 'EINVAL', 'ip route add 10.244.3.1/24 dev v0', /prefix/i);
      ok(res[8], 'routeAdd table 100');

      const routes = ok<Array<Record<string, unknown>>>(res[9]);
      assert.equal(routes.length, 3, JSON.stringify(routes));
      const byDst = new Map(routes.map((r) => [`${r.dst}/${r.dstLen}`, r]));
      assert.deepEqual([...byDst.keys()].sort(), ['10.244.3.0/24', '10.244.9.0/24', '10.9.0.0/24']);
      assert.deepEqual(byDst.get('10.244.3.0/24'), {
        dst: '10.244.3.0',
        dstLen: 24,
        gateway: '10.9.0.7',
        oif: v0,
        table: 254,
        scope: 0,
        protocol: 3,
        onlink: false,
        prefsrc: '10.9.0.1',
      });
      assert.equal(byDst.get('10.244.9.0/24')?.onlink, true);
      assert.equal(byDst.get('10.244.9.0/24')?.priority, 20);
      assert.equal(byDst.get('10.9.0.0/24')?.protocol, 2, 'the kernel prefix route');
      assert.equal(byDst.get('10.9.0.0/24')?.scope, 253);

      const shown = ipJson<IpRoute[]>(ns, 'route', 'show');
      const mine = shown.find((r) => r.dst === '10.244.3.0/24');
      assert.equal(mine?.gateway, '10.9.0.7');
      assert.equal(mine?.prefsrc, '10.9.0.1');
      const onlink = shown.find((r) => r.dst === '10.244.9.0/24');
      assert.ok(onlink?.flags.includes('onlink'));
      assert.equal(onlink?.metric, 20);
      assert.equal(ipJson<IpRoute[]>(ns, 'route', 'show', 'table', '100')[0]?.dst, '10.100.0.0/16');

      assert.deepEqual(ok(res[10]), { dst: '10.244.3.5', gateway: '10.9.0.7', oif: v0, prefsrc: '10.9.0.1' });
      assert.deepEqual(ok(res[11]), { dst: '10.9.0.3', oif: v0, prefsrc: '10.9.0.1' });

      const del = inNs(ns, [
        ['routeDel', route],
        ['routeDel', route],
        ['routeDel', { dst: '10.100.0.0', dstLen: 16, table: 100 }],
        ['routeList'],
      ]);
      ok(del[0], 'routeDel');
      err(del[1], 'ESRCH', 'ip route del 10.244.3.0/24 dev v0');
      ok(del[2], 'routeDel table 100');
      const left = ok<Array<{ dst: string }>>(del[3]).map((r) => r.dst).sort();
      assert.deepEqual(left, ['10.244.9.0', '10.9.0.0']);
      assert.deepEqual(ipJson<IpRoute[]>(ns, 'route', 'show', 'table', '100'), []);
    }));

  it('finds the default route with the lowest metric, ENETUNREACH without one', () =>
    withNs((ns, v0, v1) => {
      const res = inNs(ns, [
        ['defaultRouteLink'],
        ['routeGet', '8.8.8.8'],
        ['linkSetUp', v0, true],
        ['linkSetUp', v1, true],
        ['addrAdd', v0, '10.9.0.1', 24],
        ['addrAdd', v1, '10.8.0.1', 24],
        ['routeAdd', { dst: '0.0.0.0', dstLen: 0, gateway: '10.9.0.254', oif: v0, priority: 200 }],
        ['defaultRouteLink'],
        ['routeAdd', { dst: '0.0.0.0', dstLen: 0, gateway: '10.8.0.254', oif: v1, priority: 100 }],
        ['defaultRouteLink'],
        ['routeGet', '8.8.8.8'],
      ]);
      err(res[0], 'ENETUNREACH', 'default route');
      err(res[1], 'ENETUNREACH', 'ip route get 8.8.8.8');
      for (const i of [2, 3, 4, 5, 6]) ok(res[i], `step ${i}`);
      assert.equal(ok(res[7]), v0);
      ok(res[8]);
      assert.equal(ok(res[9]), v1);
      assert.deepEqual(ok(res[10]), { dst: '8.8.8.8', gateway: '10.8.0.254', oif: v1, prefsrc: '10.8.0.1' });
    }));

  it('names a link in an error by its name, or by index once the link is gone', () =>
    withNs((ns, v0, v1) => {
      // The kernel refuses a route through a link that is down (v1).
      const [down, mtu] = inNs(ns, [
        ['routeAdd', { dst: '10.244.3.0', dstLen: 24, oif: v1 }],
        ['linkSetMtu', v1, 10],
      ]);
      const e = err(down, 'ENETDOWN', 'ip route add 10.244.3.0/24 dev v1');
      assert.match(e.message, /^ip route add 10\.244\.3\.0\/24 dev v1: /);
      err(mtu, 'EINVAL', 'ip link set dev v1 mtu 10');

      ip('-n', ns, 'link', 'del', 'v0'); // takes its peer v1 with it
      const [route, addr, up] = inNs(ns, [
        ['routeAdd', { dst: '10.244.3.0', dstLen: 24, oif: v0 }],
        ['addrAdd', v1, '10.9.0.1', 24],
        ['linkSetUp', v0, true],
      ]);
      err(route, 'ENODEV', `ip route add 10.244.3.0/24 dev #${v0}`);
      err(addr, 'ENODEV', `ip addr add 10.9.0.1/24 dev #${v1}`);
      err(up, 'ENODEV', `ip link set dev #${v0} up`);
    }));

  it('leaves no namespace behind', () => {
    assert.deepEqual(ourNamespaces(), []);
  });
});
