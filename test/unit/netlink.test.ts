// Byte-level tests of the rtnetlink builder and parsers (native/core/nl_msg.*)
// through the addon's pure helpers: no socket, no root. Messages are built
// here by hand as well, so the parsers are checked against bytes the C++
// builder did not write, including malformed ones.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { describe, it } from 'node:test';

import { addon } from '../../src/native';
import type { NetlinkRoute } from '../../src/native';

const nl = addon.netlink;

// uapi numbers (linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h).
const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const NLM_F_REQUEST = 0x1;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_FLAGS = 8;
const IFA_F_SECONDARY = 0x01;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_PERMANENT = 0x80;
const IFA_F_NOPREFIXROUTE = 0x200;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const AF_INET = 2;
const AF_INET6 = 10;

// Netlink is host byte order.
const LE = os.endianness() === 'LE';
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  if (LE) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(v);
  else b.writeUInt32BE(v);
  return b;
};
const readU16 = (b: Buffer, off: number): number => (LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
const readU32 = (b: Buffer, off: number): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
const writeU16 = (b: Buffer, v: number, off: number): void => void u16(v).copy(b, off);
const writeU32 = (b: Buffer, v: number, off: number): void => void u32(v).copy(b, off);
const ip = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);

// One attribute, padded (unless `unpadded`, for the last one of a message).
function attr(type: number, payload: Buffer, unpadded = false): Buffer {
  const a = Buffer.concat([u16(4 + payload.length), u16(type), payload]);
  return unpadded ? a : pad4(a);
}
const strAttr = (type: number, s: string): Buffer => attr(type, Buffer.from(s + '\0'));

function message(type: number, flags: number, body: Buffer): Buffer {
  return Buffer.concat([u32(16 + body.length), u16(type), u16(flags), u32(0), u32(0), body]);
}

function ifinfomsg(index: number, flags: number): Buffer {
  return Buffer.concat([Buffer.from([0, 0]), u16(1 /* ARPHRD_ETHER */), u32(index), u32(flags), u32(0)]);
}

function rtmsg(o: { dstLen?: number; family?: number; table?: number; protocol?: number; scope?: number; type?: number; flags?: number }): Buffer {
  return Buffer.concat([
    Buffer.from([o.family ?? AF_INET, o.dstLen ?? 24, 0, 0, o.table ?? 254, o.protocol ?? 3, o.scope ?? 0, o.type ?? 1]),
    u32(o.flags ?? 0),
  ]);
}

function ifaddrmsg(prefixLen: number, scope: number, index: number, family = AF_INET, flags = 0): Buffer {
  return Buffer.concat([Buffer.from([family, prefixLen, flags, scope]), u32(index)]);
}

// A well-formed route message with every attribute we read.
function fullRoute(): Buffer {
  return message(
    RTM_NEWROUTE,
    0,
    Buffer.concat([
      rtmsg({ dstLen: 24 }),
      attr(RTA_TABLE, u32(254)),
      attr(RTA_DST, ip('10.244.3.0')),
      attr(RTA_GATEWAY, ip('192.168.1.1')),
      attr(RTA_OIF, u32(7)),
      attr(RTA_PREFSRC, ip('192.168.1.5')),
      attr(RTA_PRIORITY, u32(100)),
    ]),
  );
}

// Every nla in `body` from `start`: [offset, len] pairs.
function attrOffsets(msg: Buffer, start: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let off = start;
  while (off + 4 <= msg.length) {
    const len = readU16(msg, off);
    out.push([off, len]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe('netlink encodeRoute', () => {
  it('writes the nlmsghdr, rtmsg and attributes the kernel expects', () => {
    const b = nl.encodeRoute('replace', { dst: '10.244.3.0', dstLen: 24, oif: 7 });
    assert.equal(readU32(b, 0), b.length, 'nlmsg_len covers the whole message');
    assert.equal(b.length % 4, 0);
    assert.equal(readU16(b, 4), RTM_NEWROUTE);
    assert.equal(readU16(b, 6), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type
    assert.deepEqual([...b.subarray(16, 24)], [AF_INET, 24, 0, 0, 254, 3 /* boot */, 253 /* link */, 1 /* unicast */]);
    assert.equal(readU32(b, 24), 0, 'no onlink flag');
    assert.deepEqual(attrOffsets(b, 28).map(([off]) => readU16(b, off + 2)), [RTA_DST, RTA_OIF]);
    assert.deepEqual([...b.subarray(32, 36)], [10, 244, 3, 0]);
    assert.equal(readU32(b, 40), 7);
  });

  it('uses the flags and defaults of ip route add / del', () => {
    const add = nl.encodeRoute('add', { dst: '10.244.0.0', dstLen: 16, gateway: '10.0.0.1' });
    assert.equal(readU16(add, 6), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
    assert.equal(add[22], 0, 'a route via a gateway has scope universe');
    const del = nl.encodeRoute('del', { dst: '10.244.0.0', dstLen: 16 });
    assert.equal(readU16(del, 4), RTM_DELROUTE);
    assert.equal(readU16(del, 6), NLM_F_REQUEST);
    assert.equal(del[21], 0, 'protocol: any');
    assert.equal(del[22], 255, 'scope: nowhere (any)');
  });

  it('puts a table above 255 in RTA_TABLE and a default route has no RTA_DST', () => {
    const b = nl.encodeRoute('add', { dst: '0.0.0.0', dstLen: 0, gateway: '10.0.0.1', table: 1000 });
    assert.equal(b[20], 0, 'rtm_table is RT_TABLE_UNSPEC');
    const types = attrOffsets(b, 28).map(([off]) => readU16(b, off + 2));
    assert.deepEqual(types, [RTA_TABLE, RTA_GATEWAY]);
  });
});

describe('netlink route round trip', () => {
  const cases: NetlinkRoute[] = [
    { dst: '10.244.3.0', dstLen: 24, oif: 7 },
    { dst: '10.244.0.0', dstLen: 16, gateway: '10.244.3.0', oif: 12, onlink: true, priority: 5, prefsrc: '10.244.7.0', protocol: 4, scope: 0 },
    { dst: '0.0.0.0', dstLen: 0, gateway: '192.168.0.1', table: 100 },
    { dst: '10.1.2.3', dstLen: 32, oif: 3, table: 70000, priority: 0xffffffff },
  ];
  for (const op of ['add', 'replace', 'del'] as const) {
    for (const r of cases) {
      it(`${op} ${r.dst}/${r.dstLen}`, () => {
        const got = nl.decodeRoute(nl.encodeRoute(op, r));
        assert.ok(got);
        assert.equal(got.dst, r.dst);
        assert.equal(got.dstLen, r.dstLen);
        assert.equal(got.gateway, r.gateway);
        assert.equal(got.oif, r.oif);
        assert.equal(got.table, r.table ?? 254);
        assert.equal(got.onlink, r.onlink ?? false);
        assert.equal(got.prefsrc, r.prefsrc);
        assert.equal(got.priority, r.priority);
        if (r.protocol !== undefined) assert.equal(got.protocol, r.protocol);
        if (r.scope !== undefined) assert.equal(got.scope, r.scope);
      });
    }
  }

  it('parses from an unaligned Buffer', () => {
    const b = nl.encodeRoute('add', cases[1]);
    const shifted = Buffer.alloc(b.length + 1);
    b.copy(shifted, 1);
    assert.equal(nl.decodeRoute(shifted.subarray(1))?.gateway, '10.244.3.0');
  });
});

describe('netlink decodeRoute on hand-built bytes', () => {
  it('reads every attribute of a well-formed message', () => {
    assert.deepEqual(nl.decodeRoute(fullRoute()), {
      dst: '10.244.3.0',
      dstLen: 24,
      gateway: '192.168.1.1',
      oif: 7,
      table: 254,
      scope: 0,
      protocol: 3,
      onlink: false,
      prefsrc: '192.168.1.5',
      priority: 100,
    });
  });

  it('accepts a last attribute without its padding and skips unknown ones', () => {
    const body = Buffer.concat([
      rtmsg({ dstLen: 8 }),
      attr(250, Buffer.from([1, 2, 3])),
      attr(RTA_DST, ip('10.0.0.0')),
      attr(251, Buffer.from([9]), true),
    ]);
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, body))?.dst, '10.0.0.0');
  });

  it('takes device and gateway from the first hop of RTA_MULTIPATH', () => {
    const hop = (ifindex: number, gw: string): Buffer => {
      const attrs = attr(RTA_GATEWAY, ip(gw));
      return Buffer.concat([u16(8 + attrs.length), Buffer.from([0, 0]), u32(ifindex), attrs]);
    };
    const mp = Buffer.concat([hop(5, '10.0.0.1'), hop(6, '10.0.1.1')]);
    const msg = message(RTM_NEWROUTE, 0, Buffer.concat([rtmsg({ dstLen: 0 }), attr(RTA_MULTIPATH, mp)]));
    const r = nl.decodeRoute(msg);
    assert.equal(r?.oif, 5);
    assert.equal(r?.gateway, '10.0.0.1');
    // A hop whose rtnh_len runs past the attribute.
    const badHop = Buffer.from(mp);
    writeU16(badHop, 200, 0);
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, Buffer.concat([rtmsg({}), attr(RTA_MULTIPATH, badHop)]))), null);
  });

  it('returns null for another family, another type or dst_len over 32', () => {
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, rtmsg({ family: AF_INET6 }))), null);
    assert.equal(nl.decodeRoute(message(RTM_NEWLINK, 0, rtmsg({}))), null);
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, rtmsg({ dstLen: 33 }))), null);
  });

  it('returns null for every truncation, never reading past the end', () => {
    const full = fullRoute();
    for (let n = 0; n < full.length; n++) {
      assert.equal(nl.decodeRoute(full.subarray(0, n)), null, `truncated to ${n}`);
    }
    // The same, with nlmsg_len patched to agree with the short buffer, so
    // it is the attribute walk that has to notice (a cut inside an nlattr).
    const bounds = new Set(attrOffsets(full, 28).map(([off]) => off));
    bounds.add(full.length);
    for (let n = 28; n < full.length; n++) {
      const cut = Buffer.from(full.subarray(0, n));
      writeU32(cut, n, 0);
      const got = nl.decodeRoute(cut);
      if (!bounds.has(n) && n % 4 !== 0) assert.equal(got, null, `cut at ${n}`);
    }
  });

  it('rejects a bad nla_len: under 4, past the end, or stray bytes after the last attribute', () => {
    const full = fullRoute();
    const dstAt = attrOffsets(full, 28)[1][0];
    for (const len of [0, 1, 3, full.length, 0xffff]) {
      const b = Buffer.from(full);
      writeU16(b, len, dstAt);
      assert.equal(nl.decodeRoute(b), null, `nla_len ${len}`);
    }
    const stray = Buffer.concat([full, Buffer.from([1, 2])]);
    writeU32(stray, stray.length, 0);
    assert.equal(nl.decodeRoute(stray), null, 'two stray bytes');
  });

  it('rejects a fixed-size attribute of the wrong size', () => {
    const body = Buffer.concat([rtmsg({}), attr(RTA_OIF, Buffer.from([1, 0, 0, 0, 0, 0]))]);
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, body)), null);
    const gw = Buffer.concat([rtmsg({}), attr(RTA_GATEWAY, Buffer.from([10, 0, 0]))]);
    assert.equal(nl.decodeRoute(message(RTM_NEWROUTE, 0, gw)), null);
  });

  it('rejects a bad nlmsg_len', () => {
    for (const len of [0, 15, 1000]) {
      const b = fullRoute();
      writeU32(b, len, 0);
      assert.equal(nl.decodeRoute(b), null, `nlmsg_len ${len}`);
    }
  });

  it('survives random bytes behind a valid header', () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 3000; i++) {
      const n = 12 + (rand() % 120);
      const body = Buffer.alloc(n);
      for (let j = 0; j < n; j++) body[j] = rand() & 0xff;
      body[0] = AF_INET;
      // Small lengths are the interesting ones.
      for (let j = 12; j + 1 < n; j += 4) if (rand() % 2) writeU16(body, rand() % 24, j);
      const msg = message(RTM_NEWROUTE, 0, body);
      const r = nl.decodeRoute(msg);
      assert.ok(r === null || typeof r.dst === 'string');
      assert.ok(nl.decodeAddr(Buffer.concat([msg.subarray(0, 4), u16(RTM_NEWADDR), msg.subarray(6)])) !== undefined);
      assert.ok(nl.decodeLink(Buffer.concat([msg.subarray(0, 4), u16(RTM_NEWLINK), msg.subarray(6)])) !== undefined);
    }
  });
});

describe('netlink addresses', () => {
  it('round-trips add, replace and del with a label and scope', () => {
    for (const op of ['add', 'replace', 'del'] as const) {
      const b = nl.encodeAddr(op, 9, '10.244.3.0', 32, { scope: 253, label: 'flannel.1' });
      assert.equal(readU16(b, 4), op === 'del' ? RTM_DELADDR : RTM_NEWADDR);
      assert.deepEqual(nl.decodeAddr(b), { ifindex: 9, address: '10.244.3.0', prefixLen: 32, scope: 253, label: 'flannel.1', flags: 0 });
    }
  });

  it('writes IFA_LOCAL and IFA_ADDRESS like ip addr add', () => {
    const b = nl.encodeAddr('add', 3, '192.168.5.1', 24);
    assert.deepEqual([...b.subarray(16, 24)], [AF_INET, 24, 0, 0, ...u32(3)]);
    const types = attrOffsets(b, 24).map(([off]) => readU16(b, off + 2));
    assert.deepEqual(types.sort(), [IFA_ADDRESS, IFA_LOCAL]);
  });

  it('prefers IFA_LOCAL (a point-to-point peer is in IFA_ADDRESS)', () => {
    const body = Buffer.concat([ifaddrmsg(32, 0, 4), attr(IFA_ADDRESS, ip('10.0.0.2')), attr(IFA_LOCAL, ip('10.0.0.1')), strAttr(IFA_LABEL, 'tun0')]);
    assert.deepEqual(nl.decodeAddr(message(RTM_NEWADDR, 0, body)), { ifindex: 4, address: '10.0.0.1', prefixLen: 32, scope: 0, label: 'tun0', flags: 0 });
  });

  it('reads ifa_flags, and IFA_FLAGS over it (the kernel puts bits above 8 only there)', () => {
    const head = ifaddrmsg(24, 0, 2, AF_INET, IFA_F_PERMANENT | IFA_F_SECONDARY);
    const local = attr(IFA_LOCAL, ip('192.168.1.20'));
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, Buffer.concat([head, local])))?.flags, IFA_F_PERMANENT | IFA_F_SECONDARY);
    const withAttr = Buffer.concat([ifaddrmsg(24, 0, 2, AF_INET, IFA_F_DEPRECATED), local, attr(IFA_FLAGS, u32(IFA_F_DEPRECATED | IFA_F_NOPREFIXROUTE))]);
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, withAttr))?.flags, IFA_F_DEPRECATED | IFA_F_NOPREFIXROUTE);
  });

  it('returns null for an IFA_FLAGS that is not 4 bytes', () => {
    const body = Buffer.concat([ifaddrmsg(24, 0, 2), attr(IFA_LOCAL, ip('192.168.1.20')), attr(IFA_FLAGS, Buffer.from([0x80, 0]))]);
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, body)), null);
  });

  it('returns null without an address, for IPv6, or for a prefix over 32', () => {
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, ifaddrmsg(24, 0, 1))), null);
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, Buffer.concat([ifaddrmsg(64, 0, 1, AF_INET6), attr(IFA_ADDRESS, Buffer.alloc(16))]))), null);
    assert.equal(nl.decodeAddr(message(RTM_NEWADDR, 0, Buffer.concat([ifaddrmsg(33, 0, 1), attr(IFA_LOCAL, ip('1.2.3.4'))]))), null);
  });
});

describe('netlink decodeLink', () => {
  const linkinfo = (kindAttr: Buffer): Buffer => attr(IFLA_LINKINFO | NLA_F_NESTED, kindAttr);
  const link = (extra: Buffer[] = []): Buffer =>
    message(
      RTM_NEWLINK,
      0,
      Buffer.concat([
        ifinfomsg(5, 0x1043),
        strAttr(IFLA_IFNAME, 'veth0'),
        attr(IFLA_MTU, u32(1450)),
        attr(IFLA_ADDRESS, Buffer.from([0xaa, 0xbb, 0xcc, 0x0d, 0xe, 0xff])),
        ...extra,
      ]),
    );

  it('reads name, mtu, flags, MAC and the nested kind', () => {
    assert.deepEqual(nl.decodeLink(link([linkinfo(strAttr(IFLA_INFO_KIND, 'veth'))])), {
      index: 5,
      name: 'veth0',
      mtu: 1450,
      flags: 0x1043,
      up: true,
      mac: 'aa:bb:cc:0d:0e:ff',
      kind: 'veth',
    });
  });

  it('gives mac null for a link without a 6-byte address', () => {
    const msg = message(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(8, 0), strAttr(IFLA_IFNAME, 'flannel0'), attr(IFLA_MTU, u32(1472))]));
    assert.deepEqual(nl.decodeLink(msg), { index: 8, name: 'flannel0', mtu: 1472, flags: 0, up: false, mac: null });
  });

  it('rejects a malformed attribute inside IFLA_LINKINFO', () => {
    const inner = strAttr(IFLA_INFO_KIND, 'veth');
    writeU16(inner, 40, 0); // runs past the nest
    assert.equal(nl.decodeLink(link([linkinfo(inner)])), null);
  });

  it('rejects a message without IFLA_IFNAME or with a short ifinfomsg', () => {
    assert.equal(nl.decodeLink(message(RTM_NEWLINK, 0, ifinfomsg(5, 0))), null);
    assert.equal(nl.decodeLink(message(RTM_NEWLINK, 0, Buffer.alloc(8))), null);
  });
});

describe('netlink argument checks', () => {
  it('throws TypeError naming the argument', () => {
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0', dstLen: 8 }), { name: 'TypeError', message: /route\.dst/ });
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0', dstLen: 8, gateway: 'x' }), { name: 'TypeError', message: /route\.gateway/ });
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0\u0000junk', dstLen: 8 }), { name: 'TypeError', message: /route\.dst/ });
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0', dstLen: 8, onlink: 1 as unknown as boolean }), { name: 'TypeError', message: /route\.onlink/ });
    assert.throws(() => nl.encodeRoute('flush' as 'add', { dst: '10.0.0.0', dstLen: 8 }), { name: 'TypeError', message: /op/ });
    assert.throws(() => nl.encodeRoute('add', null as unknown as NetlinkRoute), { name: 'TypeError', message: /route/ });
    assert.throws(() => nl.encodeAddr('add', '3' as unknown as number, '10.0.0.1', 24), { name: 'TypeError', message: /ifindex/ });
    assert.throws(() => nl.decodeRoute('x' as unknown as Buffer), { name: 'TypeError', message: /buf/ });
    assert.throws(() => nl.linkGet({} as unknown as string), { name: 'TypeError', message: /nameOrIndex/ });
    assert.throws(() => nl.linkSetUp(1, 'yes' as unknown as boolean), { name: 'TypeError', message: /up/ });
    assert.throws(() => nl.routeGet('::1'), { name: 'TypeError', message: /address/ });
  });

  it('throws RangeError for a number out of range', () => {
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0', dstLen: 33 }), { name: 'RangeError', message: /route\.dstLen/ });
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0', dstLen: 8, oif: 0 }), { name: 'RangeError', message: /route\.oif/ });
    assert.throws(() => nl.encodeRoute('add', { dst: '10.0.0.0', dstLen: 8.5 }), { name: 'RangeError' });
    assert.throws(() => nl.encodeAddr('add', 1, '10.0.0.1', -1), { name: 'RangeError', message: /prefixLen/ });
  });
});
