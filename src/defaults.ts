// One definition of each default weft shares with flanneld
// (docs/flanneld-parity.md says where each comes from in flannel's source). Per-packet sizes
// (encapsulation overheads, headroom) belong to the packet core and come from
// the addon (addon.encap.overhead), not from here.

/** UDP ports of the two encapsulating backends (Backend.Port 0 means these). */
export const DEFAULT_PORT = { udp: 8285, vxlan: 8472 } as const;
export const DEFAULT_VNI = 1;

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';
/** flanneld's --etcd-endpoints default; weft uses it only when asked (README, "Where weft differs"). */
export const FLANNEL_ETCD_ENDPOINTS = 'http://127.0.0.1:4001,http://127.0.0.1:2379';
export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_NET_CONFIG_PATH = '/etc/kube-flannel/net-conf.json';
export const DEFAULT_KUBE_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';
/** Where a pod's service account is mounted (client-go's in-cluster config reads token and ca.crt there). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** weft's embedded store, used when no --etcd-endpoints is given. */
export const DEFAULT_STORE_PATH = '/var/lib/weft/leases.db';

/** flannel's subnetTTL: 24 h, renewed --subnet-lease-renew-margin minutes before it ends. */
export const LEASE_TTL_SECONDS = 24 * 60 * 60;
export const RENEW_MARGIN_MINUTES = 60;
