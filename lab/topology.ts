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
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { type Cidr4, formatCidr4, formatIp4, parseCidr4 } from '../src/cidr';
import { type CniResult, labFlannelConflist, NodeCni, podAddress, type PortMapping } from './cni';
import { deleteNamespaces, Netns } from './netns';

export interface LabNode {
  index: number;
  ns: Netns;
  pod: Netns;
  underlayIp: string;
  /** Set once the pod is wired (wirePod, wirePodCni). */
  subnet: string;
  /** cni0's address: subnet .1 */
  gatewayIp: string;
  /** the pod's address: subnet .2 */
  podIp: string;
}

export const LAB_UNDERLAY_PREFIX = '192.168.77';
export const LAB_NETWORK = '10.244.0.0/16';

export class Lab {
  private readonly extra: Netns[] = [];
  private readonly cni = new Map<LabNode, { subnetFile: string; node: NodeCni }>();
  /** The lab's /var/lib/cni: each node's host-local leases and flannel's saved delegates. */
  private cniDir?: string;

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
   * The node's pod networking as a real node runs it: kube-flannel's
   * conflist (flannel's plugin reading subnetFile, bridge, host-local,
   * portmap) and containerd's loopback, each node with its own state
   * directory under the lab's. Made on first use; a node reads one subnet file.
   */
  nodeCni(node: LabNode, subnetFile: string): NodeCni {
    const known = this.cni.get(node);
    if (known) {
      if (known.subnetFile !== subnetFile) throw new Error(`node${node.index} reads ${known.subnetFile} already, not ${subnetFile}`);
      return known.node;
    }
    this.cniDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `${this.prefix}cni-`));
    const nodeCni = new NodeCni(node.ns, labFlannelConflist(path.join(this.cniDir, `n${node.index}`), subnetFile));
    this.cni.set(node, { subnetFile, node: nodeCni });
    return nodeCni;
  }

  /**
   * Wires node.pod through the real CNI plugins from the node's subnet.env,
   * as kubelet would (see nodeCni), and records its address, gateway and
   * subnet from the result.
   */
  wirePodCni(node: LabNode, subnetFile: string, portMappings?: PortMapping[]): CniResult {
    const result = this.nodeCni(node, subnetFile).addPod(node.pod, portMappings);
    const a = podAddress(result);
    if (!a.gateway) throw new Error(`CNI result for ${node.pod.name} has no gateway: ${JSON.stringify(result)}`);
    node.subnet = formatCidr4(parseCidr4(`${a.address}/${a.prefixLen}`));
    node.gatewayIp = a.gateway;
    node.podIp = a.address;
    return result;
  }

  /**
   * Wires the pod by hand, for engine-only scenarios with no subnet.env: what
   * flannel's CNI plugin (bridge + host-local IPAM) leaves behind for one
   * pod: cni0 with the subnet's .1 and the given MTU, the pod's veth on it,
   * the pod at .2 with a default route via cni0.
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
    ns.waitOperUp('cni0');
    ns.waitOperUp('vethpod');
    pod.waitOperUp('eth0');
  }

  destroy(): void {
    for (const n of this.nodes) {
      n.pod.delete();
      n.ns.delete();
    }
    for (const ns of this.extra) ns.delete();
    this.underlay.delete();
    // Pods' links and the plugins' iptables rules went with the namespaces;
    // the leases and saved delegates are files.
    if (this.cniDir) fs.rmSync(this.cniDir, { recursive: true, force: true });
    // A crash between create() and push() can leave a namespace unlisted.
    deleteNamespaces(`${this.prefix}-`);
  }
}
