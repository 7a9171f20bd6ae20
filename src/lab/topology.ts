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
//     |        <p>-u: bridge br0      |                 (the "switch")
//     +-------------------------------+
import { type Cidr4, formatIp4, parseCidr4 } from '../cidr';
import { Netns, run } from './netns';

export interface LabNode {
  index: number;
  ns: Netns;
  pod: Netns;
  underlayIp: string;
  subnet: string;
  /** cni0's address: subnet .1 */
  gatewayIp: string;
  /** the pod's address: subnet .2 */
  podIp: string;
}

export const LAB_UNDERLAY_PREFIX = '192.168.77';
export const LAB_NETWORK = '10.244.0.0/16';

export class Lab {
  private constructor(
    readonly prefix: string,
    readonly underlay: Netns,
    readonly nodes: LabNode[],
  ) {}

  /** Node i (from 1) gets underlay .i and subnet 10.244.i.0/24. */
  static create(prefix: string, nodeCount: number, podMtu = 1400): Lab {
    const underlay = Netns.create(`${prefix}-u`);
    const lab = new Lab(prefix, underlay, []);
    try {
      underlay.ip('link', 'add', 'br0', 'type', 'bridge');
      underlay.ip('link', 'set', 'br0', 'up');
      for (let i = 1; i <= nodeCount; i++) lab.nodes.push(lab.addNode(i, podMtu));
      return lab;
    } catch (err) {
      lab.destroy();
      throw err;
    }
  }

  private addNode(i: number, podMtu: number): LabNode {
    const ns = Netns.create(`${this.prefix}-n${i}`);
    const pod = Netns.create(`${this.prefix}-p${i}`);
    const subnet: Cidr4 = parseCidr4(`10.244.${i}.0/24`);
    const node: LabNode = {
      index: i,
      ns,
      pod,
      underlayIp: `${LAB_UNDERLAY_PREFIX}.${i}`,
      subnet: `${formatIp4(subnet.ip)}/24`,
      gatewayIp: formatIp4(subnet.ip + 1),
      podIp: formatIp4(subnet.ip + 2),
    };
    // underlay: node eth0 <-> port n<i> on br0
    ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', this.underlay.name);
    this.underlay.ip('link', 'set', `n${i}`, 'master', 'br0', 'up');
    ns.ip('addr', 'add', `${node.underlayIp}/24`, 'dev', 'eth0');
    ns.ip('link', 'set', 'eth0', 'up');
    ns.sysctl('net/ipv4/ip_forward', '1');
    // cni0 bridge with the pod's veth, as flannel's CNI plugin (bridge + host-local) leaves it
    ns.ip('link', 'add', 'cni0', 'type', 'bridge');
    ns.ip('addr', 'add', `${node.gatewayIp}/24`, 'dev', 'cni0');
    ns.ip('link', 'set', 'cni0', 'mtu', String(podMtu), 'up');
    pod.ip('link', 'add', 'eth0', 'mtu', String(podMtu), 'type', 'veth', 'peer', 'name', 'vethpod', 'netns', ns.name);
    ns.ip('link', 'set', 'vethpod', 'mtu', String(podMtu), 'master', 'cni0', 'up');
    pod.ip('addr', 'add', `${node.podIp}/24`, 'dev', 'eth0');
    pod.ip('link', 'set', 'eth0', 'up');
    pod.ip('route', 'add', 'default', 'via', node.gatewayIp);
    return node;
  }

  destroy(): void {
    for (const n of this.nodes) {
      n.pod.delete();
      n.ns.delete();
    }
    this.underlay.delete();
    // A crash between create() and push() can leave a namespace unlisted.
    for (const line of run('ip', ['netns', 'list']).split('\n')) {
      const name = line.split(' ')[0];
      if (name && name.startsWith(`${this.prefix}-`)) run('ip', ['netns', 'del', name]);
    }
  }
}
