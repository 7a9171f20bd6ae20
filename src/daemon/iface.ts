// Picks the external interface exactly as flanneld does (main.go around
// ipmatch.LookupExtIface, pkg/ip/iface.go), IPv4 only, so a node's flags
// choose the same link and address under weft as under flanneld:
//
//   no --iface, --iface-regex or --iface-can-reach:
//       the link holding --public-ip, or else the default route's link;
//       failure: "Failed to find any valid interface to use: ..."
//   otherwise one chain, each step fully checked (a usable IPv4, an MTU):
//       every --iface (an IP: the link holding it; a name: that link),
//       then every --iface-regex (each link's usable IPv4s, then names),
//       then --iface-can-reach (the link and source of `ip route get`);
//       a step that fails is logged "Could not find valid interface
//       matching ..." and the next is tried; when none is left:
//       "Failed to find interface to use that matches the interfaces
//       and/or regexes provided".
//
// A link's usable IPv4s (GetInterfaceIP4Addrs) are its global unicast and
// link-local addresses, not deprecated, ordered global before link-local,
// IFA_F_PERMANENT before not, non-temporary (for IPv4: primary) before
// temporary (secondary); the first one is the link's address. So 127.0.0.1
// is never a candidate and a regex never picks lo by it; a regex matching
// the name "lo" fails that regex for want of an IPv4, as in flanneld.
//
// A pure function over what netlink says (taken once, as a snapshot): the
// caller passes the netlink surface and a sink for flanneld's log lines.
import * as net from 'node:net';

import type { NativeNetlink, NetlinkAddr, NetlinkLink } from '../native';
import type { DaemonFlags } from './flags';

export interface ExternalInterface {
  name: string;
  index: number;
  mtu: number;
  /** The address on the interface: the UDP socket binds here. */
  ifaceAddr: string;
  /** What peers send to (--public-ip, else ifaceAddr): goes into the lease. */
  publicIp: string;
}

export type IfaceNetlink = Pick<NativeNetlink, 'linkList' | 'addrList' | 'routeList' | 'routeGet'>;
export type IfaceFlags = Pick<DaemonFlags, 'iface' | 'ifaceRegex' | 'ifaceCanReach' | 'publicIp'>;

export const NO_MATCH = 'Failed to find interface to use that matches the interfaces and/or regexes provided';

// ifa_flags bits (linux/if_addr.h); IFA_F_TEMPORARY is IFA_F_SECONDARY's bit.
export const IFA_F = { secondary: 0x01, temporary: 0x01, deprecated: 0x20, permanent: 0x80 } as const;

// Go's net.InterfaceByName/ByIndex error for a link that is not there.
const NO_SUCH_LINK = 'route ip+net: no such network interface';

class LookupError extends Error {}

// ---------------------------------------------------------------------------
// Addresses

function ip4Octets(a: string): number[] {
  return a.split('.').map(Number);
}
// Go's IP.IsLinkLocalUnicast and IsGlobalUnicast, for IPv4.
function isLinkLocal(a: string): boolean {
  const [o1, o2] = ip4Octets(a);
  return o1 === 169 && o2 === 254;
}
function isGlobalUnicast(a: string): boolean {
  const [o1] = ip4Octets(a);
  return a !== '255.255.255.255' && a !== '0.0.0.0' && o1 !== 127 && (o1 & 0xf0) !== 0xe0 && !isLinkLocal(a);
}

// flannel's compareAddrs. It is not a total order (global against
// link-local is decided before the flags, anything else against either is
// not), so the result depends on the sort: this is Go's slices.SortFunc for
// the up to 12 addresses a link has in practice, an insertion sort.
function compareAddrs(a: NetlinkAddr, b: NetlinkAddr): number {
  const rank = (x: NetlinkAddr) => [
    isGlobalUnicast(x.address) ? 0 : isLinkLocal(x.address) ? 2 : 1,
    x.flags & IFA_F.permanent ? 0 : 1,
    x.flags & IFA_F.temporary ? 1 : 0,
  ];
  const ra = rank(a);
  const rb = rank(b);
  // Global against link-local decides; anything else against either does not.
  if (ra[0] !== rb[0] && ra[0] !== 1 && rb[0] !== 1) return ra[0] - rb[0];
  return ra[1] - rb[1] || ra[2] - rb[2];
}

/** A link's usable IPv4 addresses, best first (flannel's GetInterfaceIP4Addrs). */
export function usableIp4(addrs: NetlinkAddr[], link: NetlinkLink): string[] {
  const mine = addrs.filter((a) => a.ifindex === link.index);
  for (let i = 1; i < mine.length; i++) {
    for (let j = i; j > 0 && compareAddrs(mine[j], mine[j - 1]) < 0; j--) [mine[j - 1], mine[j]] = [mine[j], mine[j - 1]];
  }
  return mine
    .filter((a) => (isGlobalUnicast(a.address) || isLinkLocal(a.address)) && !(a.flags & IFA_F.deprecated))
    .map((a) => a.address);
}

// ---------------------------------------------------------------------------
// Regexes: Go's RE2 syntax in a JS RegExp.
//
// Translated: leading flag groups (?i) (?s) (?m) (and their combinations)
// into RegExp flags; (?P<name>...) into (?<name>...); \A and \z into
// lookarounds; \Q...\E into escaped literals; POSIX classes such as
// [[:alpha:]] into ranges; a ']' first in a class into a literal ']'.
// Refused, as RE2 refuses them: lookarounds (?= (?! (?<= (?<!, back
// references \1. Refused because JS has no equivalent: (?U), flags other
// than at the start, \pN/\p{...} classes, \C, \x{...}, octal escapes.

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** A JS RegExp that matches what Go's regexp.MatchString would, or the reason it cannot. */
export function compileRe2(src: string): RegExp {
  let flags = '';
  let rest = src;
  for (let m; (m = /^\(\?([a-zA-Z]+)\)/.exec(rest)); rest = rest.slice(m[0].length)) {
    for (const f of m[1]) {
      if (!'ism'.includes(f)) throw new Error(`flag (?${f}) is not supported`);
      if (!flags.includes(f)) flags += f;
    }
  }
  let out = '';
  let i = 0;
  const unsupported = (what: string): never => {
    throw new Error(`${what} is not supported (at offset ${src.length - rest.length + i})`);
  };
  // One escape, inside a class or not: returns the JS text and how far it went.
  const escape = (inClass: boolean): string => {
    const c = rest[i + 1];
    if (c === undefined) throw new Error('trailing backslash at end of expression');
    if (/[1-9]/.test(c)) return unsupported(`back reference \\${c}`);
    if (c === '0') return unsupported('octal escape');
    if (c === 'p' || c === 'P') return unsupported(`Unicode class \\${c}`);
    if (c === 'C') return unsupported('\\C');
    if (c === 'x' && rest[i + 2] === '{') return unsupported('\\x{...}');
    if (!inClass && (c === 'A' || c === 'z')) {
      i += 2;
      return c === 'A' ? '(?<![\\s\\S])' : '(?![\\s\\S])';
    }
    if (c === 'Q') {
      const end = rest.indexOf('\\E', i + 2);
      const lit = rest.slice(i + 2, end < 0 ? rest.length : end);
      i = end < 0 ? rest.length : end + 2;
      return lit.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
    }
    i += 2;
    return `\\${c}`;
  };
  while (i < rest.length) {
    const c = rest[i];
    if (c === '\\') {
      out += escape(false);
    } else if (c === '[') {
      let cls = '[';
      i++;
      for (const [lead, as] of [['^', '^'], [']', '\\]']]) {
        if (rest[i] === lead) {
          cls += as;
          i++;
        }
      }
      while (i < rest.length && rest[i] !== ']') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(rest.slice(i));
        if (posix) {
          if (posix[1] || !POSIX[posix[2]]) return unsupported(`class [:${posix[1]}${posix[2]}:]`);
          cls += POSIX[posix[2]];
          i += posix[0].length;
        } else if (rest[i] === '\\') {
          cls += escape(true);
        } else {
          cls += rest[i] === '[' ? '\\[' : rest[i];
          i++;
        }
      }
      if (i >= rest.length) throw new Error('missing closing ]');
      out += `${cls}]`;
      i++;
    } else if (c === '(' && rest[i + 1] === '?') {
      const head = rest.slice(i);
      if (/^\(\?(=|!|<=|<!)/.test(head)) unsupported('lookaround (?=, (?!, (?<=, (?<!');
      const open = /^\(\?(:|P<|<(?=[A-Za-z_]))/.exec(head);
      if (!open) unsupported('a flag group other than a leading (?i), (?s) or (?m)');
      out += open![1] === ':' ? '(?:' : '(?<';
      i += open![0].length;
    } else {
      out += c;
      i++;
    }
  }
  return new RegExp(out, flags);
}

// ---------------------------------------------------------------------------
// The lookup

interface Snapshot {
  links: NetlinkLink[];
  addrs: NetlinkAddr[];
  nl: IfaceNetlink;
  log: (line: string) => void;
}

// Go's net.ParseIP: is this an IP at all (any family)? IPv4-mapped IPv6
// compares equal to the IPv4 address, as Go's IP.Equal does.
function asIp(s: string): { ip4?: string } | undefined {
  if (net.isIPv4(s)) return { ip4: s };
  if (!net.isIPv6(s)) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  return { ip4: mapped && net.isIPv4(mapped[1]) ? mapped[1] : undefined };
}

/** flannel's LookupExtIface for one of name, regex or canReach (or none: the default route). */
function lookupExtIface(s: Snapshot, what: { name?: string; regex?: string; canReach?: string }, publicIp: string): ExternalInterface {
  const byIndex = (index: number | undefined) => s.links.find((l) => l.index === index);
  let link: NetlinkLink | undefined;
  let ifaceAddr: string | undefined;

  let re: RegExp | undefined;
  if (what.regex) {
    try {
      re = compileRe2(what.regex);
    } catch (err) {
      throw new LookupError(`could not compile the IP address regex '${what.regex}': ${(err as Error).message}`);
    }
  }

  if (what.name) {
    const ip = asIp(what.name);
    if (ip) {
      s.log(`Searching for interface using ${ip.ip4 ?? what.name}`);
      link = s.links.find((l) => s.addrs.some((a) => a.ifindex === l.index && a.address === ip.ip4));
      if (!link) throw new LookupError(`error looking up interface ${what.name}: no interface with given IP found`);
      ifaceAddr = ip.ip4;
    } else {
      link = s.links.find((l) => l.name === what.name);
      if (!link) throw new LookupError(`error looking up interface ${what.name}: ${NO_SUCH_LINK}`);
    }
  } else if (re) {
    for (const l of s.links) {
      const hit = usableIp4(s.addrs, l).find((a) => re.test(a));
      if (hit) {
        link = l;
        ifaceAddr = hit;
        break;
      }
    }
    link ??= s.links.find((l) => re.test(l.name));
    if (!link) {
      const seen = s.links.map((l) => `${l.name}:[${usableIp4(s.addrs, l).join(' ')}]`).join(', ');
      throw new LookupError(`could not match pattern ${what.regex} to any of the available network interfaces (${seen})`);
    }
  } else if (what.canReach) {
    s.log(`Determining interface to use based on given ifcanreach: ${what.canReach}`);
    const dst = asIp(what.canReach)?.ip4;
    if (dst === undefined) {
      throw new LookupError(`failed to get ifcanreach based interface: ${what.canReach} is not an IPv4 address`);
    }
    let route;
    try {
      route = s.nl.routeGet(dst);
    } catch (err) {
      throw new LookupError(`failed to get ifcanreach based interface: couldn't lookup route to ${dst}: ${(err as Error).message}`);
    }
    link = byIndex(route.oif);
    if (!link) throw new LookupError(`failed to get ifcanreach based interface: couldn't lookup interface: ${NO_SUCH_LINK}`);
    ifaceAddr = route.prefsrc;
  } else {
    s.log('Determining IP address of default interface');
    // The main table's first default route, in the kernel's order (lowest
    // metric first). A multipath default has its first hop's oif here, where
    // flanneld's netlink library gives no link and flanneld gives up.
    const route = s.nl.routeList().find((r) => r.dstLen === 0);
    if (!route) throw new LookupError('failed to get default interface: unable to find default route');
    if (!route.oif) throw new LookupError('failed to get default interface: found default route but could not determine interface');
    link = byIndex(route.oif);
    if (!link) throw new LookupError(`failed to get default interface: ${NO_SUCH_LINK}`);
  }

  if (ifaceAddr === undefined) {
    ifaceAddr = usableIp4(s.addrs, link)[0];
    if (ifaceAddr === undefined) throw new LookupError(`failed to find IPv4 address for interface ${link.name}`);
  }
  s.log(`Using interface with name ${link.name} and address ${ifaceAddr}`);
  if (link.mtu === 0) throw new LookupError(`failed to determine MTU for ${ifaceAddr} interface`);

  if (publicIp) {
    // flanneld takes any IP here; weft's overlay is IPv4 only.
    if (!net.isIPv4(publicIp)) throw new LookupError(`invalid public IP address: ${publicIp}`);
    s.log(`Using ${publicIp} as external address`);
  } else {
    s.log(`Defaulting external address to interface address (${ifaceAddr})`);
  }
  return { name: link.name, index: link.index, mtu: link.mtu, ifaceAddr, publicIp: publicIp || ifaceAddr };
}

/**
 * The external interface for these flags, or an Error with flanneld's text.
 * `log` gets flanneld's info lines (each skipped candidate, the choice).
 */
export function selectExternalInterface(flags: IfaceFlags, nl: IfaceNetlink, log: (line: string) => void): ExternalInterface {
  const s: Snapshot = { links: nl.linkList(), addrs: nl.addrList(), nl, log };
  const attempt = (what: { name?: string; regex?: string; canReach?: string }, label: string): ExternalInterface | undefined => {
    try {
      return lookupExtIface(s, what, flags.publicIp);
    } catch (err) {
      if (!(err instanceof LookupError)) throw err;
      log(`Could not find valid interface matching ${label}: ${err.message}`);
      return undefined;
    }
  };

  if (flags.iface.length === 0 && flags.ifaceRegex.length === 0 && !flags.ifaceCanReach) {
    try {
      return lookupExtIface(s, { name: flags.publicIp }, flags.publicIp);
    } catch (err) {
      if (!(err instanceof LookupError)) throw err;
      throw new Error(`Failed to find any valid interface to use: ${err.message}`);
    }
  }
  for (const name of flags.iface) {
    const found = attempt({ name }, name);
    if (found) return found;
  }
  for (const regex of flags.ifaceRegex) {
    const found = attempt({ regex }, regex);
    if (found) return found;
  }
  if (flags.ifaceCanReach) {
    const found = attempt({ canReach: flags.ifaceCanReach }, `ifaceCanReach: ${flags.ifaceCanReach}`);
    if (found) return found;
  }
  throw new Error(NO_MATCH);
}
