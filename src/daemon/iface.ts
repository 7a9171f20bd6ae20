// Picks the external interface the way flanneld does (LookupExtIface):
// --iface (IP or name, in order), then --iface-regex (IPs, then names),
// then --iface-can-reach, then the interface holding --public-ip, then the
// default route's interface. On the chosen link a global unicast IPv4
// address wins over a link-local one.
import { cidrContains, parseCidr4, parseIp4 } from '../cidr';
import { addon, type NativeNetlink, type NetlinkAddr, type NetlinkLink } from '../native';
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

export const NO_MATCH = 'Failed to find interface to use that matches the interfaces and/or regexes provided';

const LINK_LOCAL = parseCidr4('169.254.0.0/16');

function isIp4(s: string): boolean {
  try {
    parseIp4(s);
    return true;
  } catch {
    return false;
  }
}

function preferredAddr(addrs: NetlinkAddr[]): NetlinkAddr | undefined {
  const usable = addrs.filter((a) => a.scope !== 254 /* host */);
  return (
    usable.find((a) => !cidrContains(LINK_LOCAL, parseIp4(a.address))) ??
    usable.find((a) => cidrContains(LINK_LOCAL, parseIp4(a.address)))
  );
}

export function selectExternalInterface(flags: DaemonFlags, nl: NativeNetlink = addon.netlink): ExternalInterface {
  const addrs = nl.addrList();
  const linkByIndex = (i: number): NetlinkLink => nl.linkGet(i);
  const byAddress = (ip: string): NetlinkLink | undefined => {
    const a = addrs.find((x) => x.address === ip);
    return a ? linkByIndex(a.ifindex) : undefined;
  };

  let link: NetlinkLink | undefined;
  let addr: string | undefined;
  if (flags.iface.length > 0 || flags.ifaceRegex.length > 0) {
    for (const spec of flags.iface) {
      if (isIp4(spec)) {
        link = byAddress(spec);
        addr = spec;
      } else {
        try {
          link = nl.linkGet(spec);
        } catch {
          link = undefined;
        }
      }
      if (link) break;
    }
    if (!link) {
      regexes: for (const re of flags.ifaceRegex.map((r) => new RegExp(r))) {
        for (const a of addrs) {
          if (re.test(a.address)) {
            link = linkByIndex(a.ifindex);
            addr = a.address;
            break regexes;
          }
        }
        for (const l of nl.linkList()) {
          if (re.test(l.name)) {
            link = l;
            break regexes;
          }
        }
      }
    }
    if (!link) throw new Error(NO_MATCH);
  } else if (flags.ifaceCanReach) {
    if (!isIp4(flags.ifaceCanReach)) throw new Error(`--iface-can-reach: invalid IPv4 address "${flags.ifaceCanReach}"`);
    const r = nl.routeGet(flags.ifaceCanReach);
    link = linkByIndex(r.oif);
    addr = r.prefsrc;
  } else if (flags.publicIp) {
    link = byAddress(flags.publicIp);
    if (!link) throw new Error(`error looking up interface ${flags.publicIp}: no interface has this address`);
  } else {
    let index: number;
    try {
      index = nl.defaultRouteLink();
    } catch (err) {
      throw new Error(`failed to get default interface: ${(err as Error).message}`);
    }
    link = linkByIndex(index);
  }

  const ifaceAddr = addr ?? preferredAddr(addrs.filter((a) => a.ifindex === link!.index))?.address;
  if (!ifaceAddr) throw new Error(`failed to find IPv4 address for interface ${link.name}`);
  if (flags.publicIp && !isIp4(flags.publicIp)) throw new Error(`--public-ip: invalid IPv4 address "${flags.publicIp}"`);
  return { name: link.name, index: link.index, mtu: link.mtu, ifaceAddr, publicIp: flags.publicIp || ifaceAddr };
}
