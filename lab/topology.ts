// The lab: nodes on one underlay bridge, each with a pod behind cni0, the
// way a Kubernetes node with flannel's CNI plugin is wired.
//
//     <p>-pod1                 <p>-pod2                 (pod: eth0 = subnet .2)
//        | veth                   | veth
//     cni0 (subnet .1/24)      cni0                     (node: bridge, forwarding on)
//     flannel.1 / flannel0     flannel.1 / flannel0     (TUN, made by weft)
//     eth0 192.168.77.1/24     eth0 192.168.77.2/24     (underlay)
//        |                        |
//     +--+------------------------+--+
//     |        <p>-u: bridge br0      |---- hosts (addHost: etcd, probers)
//     +-------------------------------+
import { type Cidr4, formatIp4, parseCidr4 } from '../src/cidr';
import { Netns, run } from './netns';

export interface LabNode {
  index: number;
  ns: Netns;
  pod: Netns;
  underlayIp: string;
  /** Set once the pod is wired (wirePod). */
  subnet: string;
  /** cni0's address: subnet .1 */
  gatewayIp: string;
  /** the pod's address: subnet .2 */
  podIp: string;
}

function waitOperUp(ns: Netns, dev: string, timeoutMs = 5000): void {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (!/state UP/.test(ns.ip('link', 'show', dev))) {
    if (Date.now() > deadline) throw new Error(`${dev} in ${ns.name} not up after ${timeoutMs} ms`);
    Atomics.wait(pause, 0, 0, 50);
  }
}

export const LAB_UNDERLAY_PREFIX = '192.168.77';
export const LAB_NETWORK = '10.244.0.0/16';

export class Lab {
  private readonly extra: Netns[] = [];

  private constructor(
    readonly prefix: string,
    readonly underlay: Netns,
    readonly nodes: LabNode[],
  ) {}

  /**
   * Node i (from 1) gets underlay .i. With podMtu, each node's pod is wired
   * at once with subnet 10.244.i.0/24; without, call wirePod later (from
   * the node's subnet.env, as the CNI plugin would).
   */
  static create(prefix: string, nodeCount: number, podMtu?: number): Lab {
    const underlay = Netns.create(`${prefix}-u`);
    const lab = new Lab(prefix, underlay, []);
    try {
      underlay.ip('link', 'add', 'br0', 'type', 'bridge');
      underlay.ip('link', 'set', 'br0', 'up');
      for (let i = 1; i <= nodeCount; i++) {
        const node = lab.addNode(i);
        lab.nodes.push(node);
        if (podMtu) lab.wirePod(node, `10.244.${i}.0/24`, podMtu);
      }
      return lab;
    } catch (err) {
      lab.destroy();
      throw err;
    }
  }

  /** A namespace on the underlay bridge that is not a node (an etcd host, a prober). */
  addHost(name: string, ip: string): Netns {
    const ns = Netns.create(`${this.prefix}-${name}`);
    this.extra.push(ns);
    this.plug(ns, `h${this.extra.length}`, ip);
    return ns;
  }

  private plug(ns: Netns, port: string, ip: string): void {
    ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', this.underlay.name);
    this.underlay.ip('link', 'set', port, 'master', 'br0', 'up');
    ns.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
    ns.ip('link', 'set', 'eth0', 'up');
  }

  private addNode(i: number): LabNode {
    const ns = Netns.create(`${this.prefix}-n${i}`);
    const pod = Netns.create(`${this.prefix}-p${i}`);
    const node: LabNode = { index: i, ns, pod, underlayIp: `${LAB_UNDERLAY_PREFIX}.${i}`, subnet: '', gatewayIp: '', podIp: '' };
    this.plug(ns, `n${i}`, node.underlayIp);
    ns.sysctl('net/ipv4/ip_forward', '1');
    return node;
  }

  /**
   * What flannel's CNI plugin (bridge + host-local IPAM) leaves behind for
   * one pod: cni0 with the subnet's .1 and the MTU from subnet.env, the
   * pod's veth on it, the pod at .2 with a default route via cni0.
   */
  wirePod(node: LabNode, subnet: string, mtu: number): void {
    const c: Cidr4 = parseCidr4(subnet);
    node.subnet = `${formatIp4(c.ip)}/${c.prefixLen}`;
    node.gatewayIp = formatIp4(c.ip + 1);
    node.podIp = formatIp4(c.ip + 2);
    const { ns, pod } = node;
    ns.ip('link', 'add', 'cni0', 'type', 'bridge');
    ns.ip('addr', 'add', `${node.gatewayIp}/${c.prefixLen}`, 'dev', 'cni0');
    ns.ip('link', 'set', 'cni0', 'mtu', String(mtu), 'up');
    pod.ip('link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'vethpod', 'netns', ns.name);
    ns.ip('link', 'set', 'vethpod', 'mtu', String(mtu), 'master', 'cni0', 'up');
    pod.ip('addr', 'add', `${node.podIp}/${c.prefixLen}`, 'dev', 'eth0');
    pod.ip('link', 'set', 'eth0', 'up');
    pod.ip('route', 'add', 'default', 'via', node.gatewayIp);
    // The kernel activates a new link's queue (and sets it UP) from its
    // linkwatch work, up to a second later; until then it drops what is sent.
    waitOperUp(ns, 'cni0');
    waitOperUp(ns, 'vethpod');
    waitOperUp(pod, 'eth0');
  }

  destroy(): void {
    for (const n of this.nodes) {
      n.pod.delete();
      n.ns.delete();
    }
    for (const ns of this.extra) ns.delete();
    this.underlay.delete();
    // A crash between create() and push() can leave a namespace unlisted.
    for (const line of run('ip', ['netns', 'list']).split('\n')) {
      const name = line.split(' ')[0];
      if (name && name.startsWith(`${this.prefix}-`)) run('ip', ['netns', 'del', name]);
    }
  }
}
