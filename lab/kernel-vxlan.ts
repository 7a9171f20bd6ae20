// A lab node whose overlay is the Linux kernel's vxlan device, set up the
// way flannel's vxlan backend sets up flannel.1 (pkg/backend/vxlan): the
// reference weft must interoperate with and is measured against.
import { formatIp4, parseCidr4 } from '../src/cidr';
import type { WirePeer as Peer } from '../src/engine-command';
import type { LabNode } from './topology';

export function setupKernelVxlan(node: LabNode, vtepMac: string, vni = 1, underlayMtu = 1500): void {
  const ns = node.ns;
  const dev = `flannel.${vni}`;
  // ip link add flannel.1 type vxlan id 1 local <public IP> dev eth0 nolearning dstport 8472
  ns.ip('link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'local', node.underlayIp, 'dev', 'eth0', 'nolearning', 'dstport', '8472');
  ns.ip('link', 'set', dev, 'address', vtepMac, 'mtu', String(underlayMtu - 50));
  ns.sysctl(`net/ipv6/conf/${dev}/accept_ra`, '0');
  // flannel puts the subnet's .0 on the device as a /32 and routes nothing
  // else there by itself: every remote subnet gets its own onlink route.
  ns.ip('addr', 'add', `${formatIp4(parseCidr4(node.subnet).ip)}/32`, 'dev', dev);
  ns.ip('link', 'set', dev, 'up');
  // Nothing else: flannel.1 keeps its checksum and segmentation offloads,
  // as flanneld leaves it. On a veth underlay it therefore sends inner
  // TCP/UDP checksums unfilled and TCP super-packets whole; weft takes both
  // (flannel's ethtool workaround, its issue #1279, is not needed).
}

/** What flannel does per remote vxlan lease: neigh, fdb, onlink route. */
export function addKernelVxlanPeer(node: LabNode, peer: Peer, vni = 1): void {
  const ns = node.ns;
  const dev = `flannel.${vni}`;
  const gw = formatIp4(parseCidr4(peer.subnet).ip);
  // ip neigh replace <X.0> dev flannel.1 lladdr <VtepMAC> nud permanent
  ns.ip('neigh', 'replace', gw, 'dev', dev, 'lladdr', peer.vtepMac!, 'nud', 'permanent');
  // bridge fdb replace <VtepMAC> dev flannel.1 dst <PublicIP> self permanent
  ns.exec('bridge', ['fdb', 'replace', peer.vtepMac!, 'dev', dev, 'dst', peer.publicIp, 'self', 'permanent']);
  // ip route replace <X.0/24> via <X.0> dev flannel.1 onlink
  ns.ip('route', 'replace', peer.subnet, 'via', gw, 'dev', dev, 'onlink');
}
