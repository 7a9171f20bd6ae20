// A lab whose nodes are Kubernetes nodes: the lab API server on a host of
// its own (TLS, bearer tokens, RBAC), each node registered as a kubelet and
// the node IPAM controller leave it (spec.podCIDR 10.244.<i>.0/24, an
// InternalIP, NetworkUnavailable=True until the network says otherwise), and
// weft started on a node with deploy/kube-weft.yml's flags, its net-conf.json
// and its ClusterRole's identity: from a kubeconfig with NODE_NAME, or as the
// DaemonSet's pod runs it (in-cluster service-account files, POD_NAME and
// POD_NAMESPACE). The netns tests and `npm run demo -- --kube` run on it.
//
//     lab API server 192.168.77.100:6443  (host "api"; kubectl runs there)
//        |
//     ===br0=== node1 .1, node2 .2, node3 .3 ...  (weft, cni0, a pod each)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SERVICE_ACCOUNT_DIR } from '../../src/defaults';
import { DaemonProcess } from '../daemon-process';
import type { Netns } from '../netns';
import { Lab, type LabNode } from '../topology';
import { ADMIN_TOKEN, ADMIN_USER, FLANNEL_SA, FLANNEL_USER, KubeApiServer, type LabNodeSpec } from './apiserver-process';
import { kubectl, type KubectlOptions, type KubectlResult } from './kubectl';
import { manifestConfig, manifestObjects, manifestRules, weftContainer } from './manifest';
import type { JsonObject } from './patch';

export const API_IP = '192.168.77.100';
/** The DaemonSet's service account's token on the lab API server. */
export const WEFT_TOKEN = 'weft-flannel-sa-token';
export const WEFT_USER = FLANNEL_USER;

/** The conditions a fresh node has on a cloud whose routes flannel sets up: Ready, and the network not yet. */
export function freshConditions(): JsonObject[] {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return [
    { type: 'Ready', status: 'True', lastHeartbeatTime: now, lastTransitionTime: now, reason: 'KubeletReady', message: 'kubelet is posting ready status' },
    { type: 'NetworkUnavailable', status: 'True', lastHeartbeatTime: now, lastTransitionTime: now, reason: 'NoRouteCreated', message: 'Node created without a route' },
  ];
}

export interface KubeDaemonOptions {
  /** Flags after the DaemonSet's own (and the lab's --kubeconfig-file / --net-config-path). */
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Run as the DaemonSet's pod: in-cluster service account, POD_NAME/POD_NAMESPACE (a pod object is made). */
  inCluster?: boolean;
  /** Another bearer token than the DaemonSet's (e.g. one whose role lacks a verb). */
  token?: { token: string; user: string };
  detached?: boolean;
}

export class KubeLab {
  /** Directories made for the service-account mount point, to remove at the end (deepest first). */
  private readonly madeDirs: string[] = [];

  private constructor(
    readonly lab: Lab,
    readonly apiHost: Netns,
    readonly api: KubeApiServer,
    readonly dir: string,
    readonly netConfPath: string,
  ) {}

  /** The lab, the API server with the manifest's ClusterRole for the DaemonSet's account, and the manifest's net-conf.json (or netConf). */
  static async create(prefix: string, nodes: number, o: { netConf?: Record<string, unknown>; bookmarkMs?: number } = {}): Promise<KubeLab> {
    const lab = Lab.create(prefix, nodes);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}kube-`));
    try {
      const host = lab.addHost('api', API_IP);
      const api = await KubeApiServer.start({ dir: path.join(dir, 'api'), ns: host, listenIp: API_IP, bookmarkMs: o.bookmarkMs });
      await api.addUser(WEFT_TOKEN, { user: WEFT_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${FLANNEL_SA.namespace}`, 'system:authenticated'], rules: manifestRules() });
      const netConfPath = path.join(dir, 'net-conf.json');
      fs.writeFileSync(netConfPath, o.netConf ? `${JSON.stringify(o.netConf, null, 2)}\n` : manifestConfig()['net-conf.json']);
      return new KubeLab(lab, host, api, dir, netConfPath);
    } catch (err) {
      lab.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  nodeName(node: LabNode): string {
    return `node${node.index}`;
  }

  podCidr(node: LabNode): string {
    return `10.244.${node.index}.0/24`;
  }

  /** Registers the node as kubelet and node IPAM would (podCIDR and InternalIP); spec overrides any of it. */
  async register(node: LabNode, spec: Partial<LabNodeSpec> = {}): Promise<JsonObject> {
    return this.api.addNode({ name: this.nodeName(node), podCIDR: this.podCidr(node), internalIP: node.underlayIp, conditions: freshConditions(), ...spec });
  }

  /** kubectl as the cluster admin, run on the API server's host. */
  get admin(): KubectlOptions {
    return { kubeconfig: this.api.kubeconfig(ADMIN_TOKEN, ADMIN_USER), ns: this.apiHost };
  }

  kubectl(args: string[]): Promise<KubectlResult> {
    return kubectl(args, this.admin);
  }

  /** `kubectl get nodes -o json` as the admin: the nodes as kubectl shows them. */
  async nodes(): Promise<JsonObject[]> {
    const r = await this.kubectl(['get', 'nodes', '-o', 'json']);
    if (r.code !== 0) throw new Error(`kubectl get nodes: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { items: JsonObject[] }).items;
  }

  /** The DaemonSet's container args, as deploy/kube-weft.yml gives them. */
  get daemonSetArgs(): string[] {
    return weftContainer(manifestObjects()).args ?? [];
  }

  /**
   * weft on node with the DaemonSet's flags: by default from a kubeconfig for
   * the DaemonSet's account with NODE_NAME (as a systemd unit would run it);
   * inCluster runs it as the pod does.
   */
  async daemon(node: LabNode, o: KubeDaemonOptions = {}): Promise<DaemonProcess> {
    const dir = path.join(this.dir, `node${node.index}`);
    const args = [...this.daemonSetArgs, '--net-config-path', this.netConfPath];
    let env: NodeJS.ProcessEnv = { NODE_NAME: this.nodeName(node) };
    let serviceAccount: string | undefined;
    if (o.inCluster) {
      const pod = `kube-flannel-ds-${this.nodeName(node)}`;
      await this.api.addPod(FLANNEL_SA.namespace, pod, this.nodeName(node));
      const sa = this.api.inClusterFiles(path.join(dir, 'serviceaccount'), o.token?.token ?? WEFT_TOKEN, FLANNEL_SA.namespace);
      this.ensureMountPoint();
      serviceAccount = sa.dir;
      env = { POD_NAME: pod, POD_NAMESPACE: FLANNEL_SA.namespace, ...sa.env };
    } else {
      const t = o.token ?? { token: WEFT_TOKEN, user: WEFT_USER };
      args.push('--kubeconfig-file', this.api.kubeconfig(t.token, t.user, path.join(dir, 'kubeconfig.json')));
    }
    return DaemonProcess.spawn({ node, dir, args: [...args, ...(o.extraArgs ?? [])], env: { ...env, ...o.env }, serviceAccount, detached: o.detached });
  }

  /**
   * The service account's mount point must exist for the daemon's own mount
   * namespace to bind the files there; made here only when missing (and
   * removed at the end), never written into.
   */
  private ensureMountPoint(): void {
    const missing: string[] = [];
    for (let d = SERVICE_ACCOUNT_DIR; !fs.existsSync(d); d = path.dirname(d)) missing.push(d);
    fs.mkdirSync(SERVICE_ACCOUNT_DIR, { recursive: true });
    this.madeDirs.push(...missing);
  }

  async destroy(): Promise<void> {
    await this.api.stop().catch(() => undefined);
    this.lab.destroy();
    for (const d of this.madeDirs) {
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty (someone else's now) or gone: leave it
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
