// The backend registry, chosen by net-conf's Backend.Type. Adding a backend
// is one file and one line here.
import type { BackendType } from '../config/netconf';
import { openHostGw } from './host-gw';
import type { BackendFactory } from './types';
import { openUdp } from './udp';
import { openVxlan } from './vxlan';

export const BACKENDS: Record<BackendType, BackendFactory> = {
  udp: openUdp,
  vxlan: openVxlan,
  'host-gw': openHostGw,
};

export type { Backend, BackendOptions, ExternalLink, PeerState } from './types';
