// Lease -> peer: which leases this node forwards to, and how. A lease of
// another backend type is ignored, as flannel ignores it: its node cannot
// decode our frames.
import { formatCidr4, type Cidr4 } from '../cidr';
import type { Peer } from '../engine';
import type { WireFormat } from '../native';
import type { Lease } from '../store/types';
import { isMac } from '../vtep';

export type PeerVerdict = { peer: Peer } | { ignored: string };

export function peerFromLease(lease: Lease, backend: WireFormat): PeerVerdict {
  const subnet = formatCidr4(lease.subnet);
  const type = lease.attrs.BackendType ?? '';
  if (backend === 'udp') {
    // flannel's udp leases carry no BackendType at all.
    if (type !== '' && type !== 'udp') return { ignored: `backend type "${type}" is not udp` };
    return { peer: { subnet, publicIp: lease.attrs.PublicIP } };
  }
  if (type !== 'vxlan') return { ignored: `backend type "${type || 'udp'}" is not vxlan` };
  const data = lease.attrs.BackendData as { VtepMAC?: unknown } | undefined;
  if (!isMac(data?.VtepMAC)) return { ignored: 'BackendData has no valid VtepMAC' };
  return { peer: { subnet, publicIp: lease.attrs.PublicIP, vtepMac: data.VtepMAC.toLowerCase() } };
}

export function sameSubnet(a: Cidr4, b: Cidr4): boolean {
  return a.ip === b.ip && a.prefixLen === b.prefixLen;
}
