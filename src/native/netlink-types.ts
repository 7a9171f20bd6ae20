// Types of the addon's rtnetlink surface (native/napi/netlink_binding.cc).
// IPv4 only; addresses are dotted-quad strings. Every verb throws a
// NetlinkError on failure; a wrong argument type throws TypeError and a
// number out of range RangeError, naming the argument.

// Route and address scopes (RT_SCOPE_*), as numbers on the wire.
export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
// Route origins (RTPROT_*): `boot` is what `ip route add` uses by default,
// `kernel` marks the prefix routes the kernel adds for an address.
export const RTPROT = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4 } as const;
export const RT_TABLE_MAIN = 254;
export const IFF_UP = 0x1;

// `ip link show` for one link.
export interface NetlinkLink {
  index: number;
  name: string;
  mtu: number;
  /** IFF_* bits (ifi_flags). */
  flags: number;
  up: boolean;
  /** Lowercase "aa:bb:cc:dd:ee:ff", or null for a link without one (TUN). */
  mac: string | null;
  /** IFLA_INFO_KIND: "veth", "vxlan", "tun", ...; absent when the kernel gives none (lo). */
  kind?: string;
}

export interface NetlinkAddr {
  ifindex: number;
  address: string;
  prefixLen: number;
  /** RT_SCOPE_* */
  scope: number;
  label?: string;
  /**
   * IFA_F_* bits: 0x01 secondary (IPv6: temporary), 0x20 deprecated,
   * 0x80 permanent, ... From IFA_FLAGS when the kernel sends it (it holds the
   * bits above 8), else ifa_flags. Decoded only; requests carry none.
   */
  flags: number;
}

export interface NetlinkAddrOptions {
  /** RT_SCOPE_*; default universe (0). */
  scope?: number;
  /** IFA_LABEL; the kernel wants it to start with the link's name. */
  label?: string;
}

export interface NetlinkRoute {
  dst: string;
  dstLen: number;
  gateway?: string;
  /** Output link index. */
  oif?: number;
  /** Default main (254). */
  table?: number;
  /**
   * RT_SCOPE_*. Unset on a request means what `ip route` means: link for a
   * route without a gateway, universe with one, any for a delete.
   */
  scope?: number;
  /** RTPROT_*. Unset: boot for add/replace, any for a delete. */
  protocol?: number;
  /** RTNH_F_ONLINK: the gateway is on the link even if no prefix says so. */
  onlink?: boolean;
  prefsrc?: string;
  /** The metric. */
  priority?: number;
}

// A route as the kernel reports it: table, scope, protocol and onlink are
// always there.
export interface NetlinkRouteInfo extends NetlinkRoute {
  table: number;
  scope: number;
  protocol: number;
  onlink: boolean;
}

// `ip route get` answer.
export interface NetlinkRouteGet {
  dst: string;
  gateway?: string;
  oif: number;
  prefsrc?: string;
}

export type NetlinkOp = 'add' | 'replace' | 'del';

// What a failed verb throws (native/napi/addon.cc to_js_error).
export interface NetlinkError extends Error {
  /** errno name: 'EEXIST', 'ENODEV', 'ESRCH', ... */
  code: string;
  errno: number;
  /**
   * The verb and its arguments, naming links by name: "ip route replace
   * 10.244.3.0/24 dev flannel.1" ("dev #7" if link 7 is gone by then), "link flannel.1".
   */
  syscall: string;
  /** The kernel's extended-ack text, when it gave one. */
  extAck?: string;
}

export interface NativeNetlink {
  /** ip link show dev NAME (or by index); ENODEV "link NAME" if missing. */
  linkGet(nameOrIndex: string | number): NetlinkLink;
  /** ip link show */
  linkList(): NetlinkLink[];
  /** ip link set dev IFINDEX up|down */
  linkSetUp(ifindex: number, up: boolean): void;
  /** ip link set dev IFINDEX mtu MTU */
  linkSetMtu(ifindex: number, mtu: number): void;

  /** ip addr add ADDRESS/PREFIXLEN dev IFINDEX */
  addrAdd(ifindex: number, address: string, prefixLen: number, options?: NetlinkAddrOptions): void;
  /** ip addr replace ADDRESS/PREFIXLEN dev IFINDEX */
  addrReplace(ifindex: number, address: string, prefixLen: number, options?: NetlinkAddrOptions): void;
  /** ip addr del ADDRESS/PREFIXLEN dev IFINDEX */
  addrDel(ifindex: number, address: string, prefixLen: number, options?: NetlinkAddrOptions): void;
  /** ip -4 addr show [dev IFINDEX] */
  addrList(ifindex?: number): NetlinkAddr[];

  /** ip route add DST/LEN [via GW] [dev OIF] ... (EEXIST if it is there) */
  routeAdd(route: NetlinkRoute): void;
  /** ip route replace DST/LEN ... */
  routeReplace(route: NetlinkRoute): void;
  /** ip route del DST/LEN ... (ESRCH if there is none) */
  routeDel(route: NetlinkRoute): void;
  /** ip -4 route show table main type unicast */
  routeList(): NetlinkRouteInfo[];
  /** ip route get ADDRESS */
  routeGet(address: string): NetlinkRouteGet;
  /** The oif of the main table's IPv4 default route with the lowest metric; ENETUNREACH if none. */
  defaultRouteLink(): number;

  // Pure, no socket: the bytes of a request, and the parsers (for tests).
  /** The RTM_NEWROUTE / RTM_DELROUTE request `routeAdd` etc. would send (seq 0, no ACK flag). */
  encodeRoute(op: NetlinkOp, route: NetlinkRoute): Buffer;
  /** One RTM_NEWROUTE/RTM_DELROUTE message; null if malformed, not IPv4, or another type. */
  decodeRoute(buf: Uint8Array): NetlinkRouteInfo | null;
  encodeAddr(op: NetlinkOp, ifindex: number, address: string, prefixLen: number, options?: NetlinkAddrOptions): Buffer;
  decodeAddr(buf: Uint8Array): NetlinkAddr | null;
  /** One RTM_NEWLINK/RTM_DELLINK message; null if malformed or another type. */
  decodeLink(buf: Uint8Array): NetlinkLink | null;
}
