// flannel's kube subnet manager (pkg/subnet/kube/kube.go) as a lease source:
// our subnet is the node's spec.podCIDR, our lease is published as
// flannel's node annotations (a strategic-merge patch of nodes/status) and
// the NetworkUnavailable=False condition, and every node carrying
// kube-subnet-manager "true" is a peer. What it decides lives in
// kube-node.ts; this file does the talking, on @kubernetes/client-node.
//
// Design notes:
// - The peers come from a list of nodes and a watch from the list's
//   resourceVersion, driven here on the client's Watch rather than its
//   informer. The daemon needs to know when a re-list happened (after a
//   410 Gone, or a restarted API server that lost its watch history), so
//   it can diff a snapshot against what it forwards to; the informer turns
//   a re-list into a stream of adds and updates, and on an error it stops
//   and must be restarted by hand, with no say in the backoff. Driven
//   directly: a dropped watch resumes from the last resourceVersion it saw
//   (bookmarks move it), a 410 re-lists and yields one snapshot, and an
//   unreachable API server is retried with a doubling backoff (Outage),
//   logged once when it starts and once when it ends, while the node keeps
//   forwarding on what it knew. A re-list only replaces the peers once it
//   has succeeded: an outage never yields an empty snapshot.
// - The node is re-read with GET while acquiring (flannel polls its
//   informer's cache every 3 s for 30 s): the watch starts only once the
//   daemon is up, and GET is a verb flannel's ClusterRole already grants.
//   The calls are exactly those of kube-flannel's ClusterRole: get pods (to
//   find the node name without NODE_NAME), get, list and watch nodes, patch
//   nodes/status. test/unit/deploy.test.ts holds the manifest to that.
// - Our own node in the watch is not a peer: only its deletion concerns the
//   daemon (a revoked lease, flanneld's exit; the DaemonSet restarts it on
//   the node as kubelet re-registers it). A re-list that no longer shows
//   our node, or shows it without our annotations, makes the daemon ask
//   recreate(), which publishes them again when the node still has our
//   subnet.
// - Where flannel fails for good on a first error (the pod lookup, the API
//   at start-up), weft retries what can heal (connection errors, 5xx, 429)
//   within flannel's own deadlines, saying what fails; an RBAC 403 names
//   the verb and resource the ClusterRole lacks.
import * as fs from 'node:fs';
import * as net from 'node:net';

import { ApiException, CoreV1Api, KubeConfig, Observable, type V1Node, Watch } from '@kubernetes/client-node';

import { cidrContains, formatCidr4 } from '../cidr';
import type { NetConf } from '../config/netconf';
import { SERVICE_ACCOUNT_DIR } from '../defaults';
import type { Logger } from '../log';
import { sleep } from '../sleep';
import { countSourceFailure, Outage } from '../store/common';
import type { Lease, LeaseAttrs, LeaseBackend, LeaseEvent, WatchBatch } from '../store/types';
import {
  type AnnotationKeys,
  annotatedBackend,
  annotationKeys,
  annotationPatch,
  networkAvailablePatch,
  type NodeLike,
  nodeAnnotations,
  nodeLease,
  nodeName,
  nodeSubnet,
  quotedCidr,
  storedPublicIp,
} from './kube-node';
import type { LeaseSource } from './manager';

const STRATEGIC_MERGE = 'application/strategic-merge-patch+json';
const REQUEST_TIMEOUT_MS = 30_000;
/** flannel's nodeControllerSyncTimeout: how long start-up waits for the API. */
const SYNC_TIMEOUT_MS = 10 * 60_000;
/** flannel's AcquireLease: poll every 3 s, for up to 30 s. */
const ACQUIRE_POLL_MS = 3_000;
const ACQUIRE_TIMEOUT_MS = 30_000;
/** client-go's reflector: a watch lasts 5 to 10 minutes, then is re-opened. */
const WATCH_MIN_S = 300;
const LIST_PAGE = 500;

export interface KubeSourceOptions {
  /** --kube-api-url */
  apiUrl: string;
  /** --kubeconfig-file */
  kubeconfigFile: string;
  /** --kube-annotation-prefix */
  annotationPrefix: string;
  /** --net-config-path */
  netConfigPath: string;
  /** --set-node-network-unavailable */
  setNodeNetworkUnavailable: boolean;
  /** NODE_NAME, POD_NAME, POD_NAMESPACE, KUBERNETES_SERVICE_HOST/PORT, CONT_WHEN_CACHE_NOT_READY. */
  env: NodeJS.ProcessEnv;
  log: Logger;
}

// ---------------------------------------------------------------------------
// The client's configuration: clientcmd.BuildConfigFromFlags

/** Go's text for a file error ("open X: no such file or directory"). */
function goFileError(op: string, file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
  return `${op} ${file}: ${why}`;
}

/**
 * client-go's BuildConfigFromFlags, in flannel's words ("fail to create
 * kubernetes config: ..."): --kubeconfig-file, with its server replaced by
 * --kube-api-url when both are given; --kube-api-url alone (no
 * credentials); neither: the pod's service account (in-cluster config).
 */
export function kubeConfigFromFlags(o: Pick<KubeSourceOptions, 'apiUrl' | 'kubeconfigFile' | 'env' | 'log'>, serviceAccountDir = SERVICE_ACCOUNT_DIR): KubeConfig {
  const fail = (why: string): never => {
    throw new Error(`fail to create kubernetes config: ${why}`);
  };
  const kc = new KubeConfig();
  const server = o.apiUrl ? apiServerUrl(o.apiUrl) ?? fail(`host must be a URL or a host:port pair: ${JSON.stringify(o.apiUrl)}`) : '';
  if (o.kubeconfigFile) {
    try {
      fs.statSync(o.kubeconfigFile);
    } catch (err) {
      fail(goFileError('stat', o.kubeconfigFile, err));
    }
    try {
      kc.loadFromFile(o.kubeconfigFile);
    } catch (err) {
      fail(`${o.kubeconfigFile}: ${(err as Error).message}`);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) fail(`${o.kubeconfigFile}: no cluster for its current context ${JSON.stringify(kc.getCurrentContext() ?? '')}`);
    if (server) {
      kc.loadFromOptions({
        clusters: kc.getClusters().map((c) => (c.name === cluster!.name ? { ...c, server } : c)),
        users: kc.getUsers(),
        contexts: kc.getContexts(),
        currentContext: kc.getCurrentContext(),
      });
    }
    return kc;
  }
  if (server) {
    kc.loadFromClusterAndUser({ name: 'kube-api-url', server, skipTLSVerify: false }, { name: 'kube-api-url' });
    return kc;
  }
  // In-cluster, as rest.InClusterConfig: both variables, then the token;
  // a CA that cannot be read is logged and the system's roots are used.
  o.log.warn('neither --kubeconfig-file nor --kube-api-url given: using the in-cluster config (the pod\'s service account)');
  const host = o.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = o.env.KUBERNETES_SERVICE_PORT ?? '';
  if (!host || !port) {
    fail('unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined (outside a pod, give --kubeconfig-file or --kube-api-url)');
  }
  const tokenFile = `${serviceAccountDir}/token`;
  const caFile = `${serviceAccountDir}/ca.crt`;
  try {
    fs.readFileSync(tokenFile);
  } catch (err) {
    fail(goFileError('open', tokenFile, err));
  }
  let ca: string | undefined = caFile;
  try {
    fs.readFileSync(caFile);
  } catch (err) {
    o.log.error(`Expected to load root CA config from ${caFile}, but got err: ${goFileError('open', caFile, err)}`);
    ca = undefined;
  }
  kc.loadFromClusterAndUser(
    { name: 'inCluster', server: `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`, skipTLSVerify: false, ...(ca ? { caFile: ca } : {}) },
    { name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile } } },
  );
  return kc;
}

/** --kube-api-url as client-go takes it: a URL, or host:port (then plain http, as client-go without TLS settings). */
function apiServerUrl(s: string): string | null {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `http://${s}`;
  try {
    const u = new URL(withScheme);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) return null;
    return withScheme.replace(/\/+$/, '');
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Errors, said plainly

/** An API answer's HTTP code, or undefined for a connection failure. */
const httpCode = (err: unknown): number | undefined =>
  err instanceof ApiException ? err.code : typeof (err as { statusCode?: unknown }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : undefined;

/** Connection errors, 5xx and 429 heal by themselves; 4xx answers do not, though RBAC may still be catching up. */
const heals = (err: unknown): boolean => {
  const code = httpCode(err);
  return code === undefined || code >= 500 || code === 429;
};

/**
 * One line for a failed call: the call, the server's Status message (or the
 * connection error), and for a 403 which verb on which resource the
 * ClusterRole lacks.
 */
export function describeApiError(err: unknown, verb: string, resource: string, name?: string): string {
  const call = `${verb} ${resource}${name ? ` ${JSON.stringify(name)}` : ''}`;
  const code = httpCode(err);
  if (code === undefined) {
    // A call's own deadline (REQUEST_TIMEOUT_MS) ends it as an abort.
    if ((err as Error).name === 'AbortError') return `${call}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
    return `${call}: ${(err as Error).message}`;
  }
  let message = '';
  const body = err instanceof ApiException ? (err.body as unknown) : undefined;
  if (typeof body === 'string') {
    try {
      message = String((JSON.parse(body) as { message?: unknown }).message ?? body);
    } catch {
      message = body;
    }
  } else if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    message = (body as { message: string }).message;
  }
  if (!message) message = code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : `HTTP ${code}`;
  message = message.length > 300 ? `${message.slice(0, 300)}…` : message;
  let out = `${call}: ${code} ${message}`;
  if (code === 401) out += ' (the API server refused the credentials: check the token or client certificate)';
  if (code === 403) out += ` (RBAC: the ClusterRole bound to this service account must allow verb "${verb}" on resource "${resource}"; deploy/kube-weft.yml's does)`;
  return out;
}

// ---------------------------------------------------------------------------
// The source

/** A watch's lines as they arrive, and how it ended; read in chunks. */
class WatchLines {
  private lines: Array<{ type: string; object: Record<string, unknown> }> = [];
  private ended: { err: unknown } | null = null;
  private wake: (() => void) | null = null;

  push(type: string, object: Record<string, unknown>): void {
    this.lines.push({ type, object });
    this.wake?.();
  }

  end(err: unknown): void {
    this.ended ??= { err };
    this.wake?.();
  }

  get isEnded(): boolean {
    return this.ended !== null;
  }

  /** Everything that arrived since the last call, or how the watch ended. */
  async next(): Promise<Array<{ type: string; object: Record<string, unknown> }> | { err: unknown }> {
    while (this.lines.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
    this.wake = null;
    if (this.lines.length) return this.lines.splice(0);
    return this.ended!;
  }
}

export class KubeLeaseSource implements LeaseSource {
  readonly description: string;
  readonly lapsesAreRecoverable = false;
  readonly subnetsFromConfig = false;
  private readonly keys: AnnotationKeys;
  private readonly kc: KubeConfig;
  private readonly api: CoreV1Api;
  private readonly server: string;
  private readonly log: Logger;
  private readonly closed = new AbortController();
  private node = '';
  private lease: Lease | null = null;
  /** Peers as last listed and watched: node name -> its lease (our node is not here). */
  private readonly known = new Map<string, Lease>();
  /** node name -> the reason last logged for skipping it, so each is logged once. */
  private readonly skipped = new Map<string, string>();

  constructor(private readonly o: KubeSourceOptions) {
    this.log = o.log;
    try {
      this.keys = annotationKeys(o.annotationPrefix);
    } catch (err) {
      throw new Error(`--kube-annotation-prefix ${JSON.stringify(o.annotationPrefix)}: ${(err as Error).message}`);
    }
    this.kc = kubeConfigFromFlags(o);
    this.server = this.kc.getCurrentCluster()!.server;
    this.api = this.kc.makeApiClient(CoreV1Api);
    this.description = `Kubernetes API ${this.server}`;
  }

  /** Options for one call: a deadline, abort on close, and a content type when the call has a body. */
  private call(contentType?: string) {
    return {
      middleware: [
        {
          pre: (ctx: { setSignal(s: AbortSignal): void; setHeaderParam(k: string, v: string): void }) => {
            ctx.setSignal(AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), this.closed.signal]));
            if (contentType) ctx.setHeaderParam('Content-Type', contentType);
            return new Observable(Promise.resolve(ctx));
          },
          post: <T>(r: T) => new Observable(Promise.resolve(r)),
        },
      ],
      middlewareMergeStrategy: 'append' as const,
    } as unknown as Parameters<CoreV1Api['readNode']>[1];
  }

  /** Our node, or null if it does not exist (404). */
  private async ourNode(): Promise<V1Node | null> {
    try {
      return await this.api.readNode({ name: this.node }, this.call());
    } catch (err) {
      if (httpCode(err) === 404) return null;
      throw err;
    }
  }

  private patchStatus(body: object): Promise<V1Node> {
    return this.api.patchNodeStatus({ name: this.node, body }, this.call(STRATEGIC_MERGE));
  }

  /**
   * Retries op while it fails in a way that can heal (or always, with
   * anyError), with a doubling backoff, until deadlineMs; the first failure
   * and every change of reason are logged as warnings. Throws the last error.
   */
  private async retrying<T>(op: () => Promise<T>, o: { what: (err: unknown) => string; deadlineMs: number; signal: AbortSignal; anyError?: boolean }): Promise<T> {
    const t0 = Date.now();
    let delay = 500;
    let last = '';
    for (;;) {
      o.signal.throwIfAborted();
      try {
        const r = await op();
        if (last) this.log.info(`Kubernetes API at ${this.server} answers again`);
        return r;
      } catch (err) {
        if (o.signal.aborted) throw err;
        countSourceFailure();
        if (!o.anyError && !heals(err)) throw err;
        const msg = o.what(err);
        if (Date.now() - t0 + delay > o.deadlineMs) throw err;
        if (msg !== last) this.log.warn({ err: msg }, `${msg}; retrying`);
        last = msg;
      }
      await sleep(delay, o.signal);
      delay = Math.min(delay * 2, 5_000);
    }
  }

  private get syncDeadlineMs(): number {
    // CONT_WHEN_CACHE_NOT_READY=true: flanneld carries on after the deadline; so does weft, by waiting on.
    return this.o.env.CONT_WHEN_CACHE_NOT_READY === 'true' ? Number.MAX_SAFE_INTEGER : SYNC_TIMEOUT_MS;
  }

  /** NODE_NAME, else the pod's spec.nodeName (POD_NAME, POD_NAMESPACE), with flannel's errors. */
  private async resolveNodeName(signal: AbortSignal): Promise<string> {
    const env = this.o.env;
    if (env.NODE_NAME) return env.NODE_NAME;
    const pod = env.POD_NAME ?? '';
    const ns = env.POD_NAMESPACE ?? '';
    if (!pod || !ns) throw new Error('env variables POD_NAME and POD_NAMESPACE must be set');
    let p;
    try {
      p = await this.retrying(() => this.api.readNamespacedPod({ name: pod, namespace: ns }, this.call()), {
        what: (e) => describeApiError(e, 'get', 'pods', pod),
        deadlineMs: this.syncDeadlineMs,
        signal,
      });
    } catch (err) {
      signal.throwIfAborted();
      throw new Error(`error retrieving pod spec for '${ns}/${pod}': ${describeApiError(err, 'get', 'pods', pod)}`);
    }
    const name = p.spec?.nodeName ?? '';
    if (!name) throw new Error(`node name not present in pod spec '${ns}/${pod}'`);
    return name;
  }

  async networkConfig(signal: AbortSignal): Promise<{ text: string; origin: string; publicIp?: string }> {
    const stop = AbortSignal.any([signal, this.closed.signal]);
    this.node = await this.resolveNodeName(stop);
    this.log.info({ node: this.node }, `Created subnet manager: Kubernetes Subnet Manager - ${this.node}`);
    let text: string;
    try {
      text = fs.readFileSync(this.o.netConfigPath, 'utf8');
    } catch (err) {
      throw new Error(`failed to read net conf: ${goFileError('open', this.o.netConfigPath, err)}`);
    }
    // flanneld waits (up to 10 minutes) for its node informer's first list
    // before going on; weft waits for the API to answer for our node.
    this.log.info(`waiting for the Kubernetes API at ${this.server} (up to ${this.syncDeadlineMs === SYNC_TIMEOUT_MS ? '10m0s' : 'no limit'})`);
    let node: V1Node | null;
    try {
      node = await this.retrying(() => this.ourNode(), { what: (e) => describeApiError(e, 'get', 'nodes', this.node), deadlineMs: this.syncDeadlineMs, signal: stop, anyError: true });
    } catch (err) {
      stop.throwIfAborted();
      throw new Error(`error waiting for nodeController to sync state: ${describeApiError(err, 'get', 'nodes', this.node)}`);
    }
    const publicIp = node ? storedPublicIp(node, this.keys) : null;
    if (publicIp) this.log.info(`using public IP ${publicIp} from node annotation ${this.keys.nodePublicIp}`);
    return { text, origin: this.o.netConfigPath, ...(publicIp ? { publicIp } : {}) };
  }

  /** What our node's backend-data said (flannel's GetStoredMacAddresses), to keep the VtepMAC across restarts. */
  async previousBackend(): Promise<LeaseBackend | null> {
    let node: V1Node | null;
    try {
      node = await this.ourNode();
    } catch (err) {
      this.log.error(`Failed to get node for backend data: ${describeApiError(err, 'get', 'nodes', this.node)}`);
      return null;
    }
    const b = node ? annotatedBackend(nodeAnnotations(node), this.keys) : null;
    return b && 'backend' in b && b.backend.type !== 'other' ? b.backend : null;
  }

  /**
   * flannel's AcquireLease: the node's podCIDR, inside the Network, and our
   * annotations on the node. Unlike flannel, the podCIDR is checked before
   * the node is annotated, so a node with a bad one is left untouched.
   */
  async acquire(cfg: NetConf, attrs: LeaseAttrs): Promise<Lease> {
    const stop = this.closed.signal;
    const t0 = Date.now();
    let node: V1Node | null = null;
    let last = '';
    let waitedForCidr = false;
    for (;;) {
      try {
        node = await this.ourNode();
        last = node ? '' : `node "${this.node}" does not exist (yet)`;
      } catch (err) {
        countSourceFailure();
        last = describeApiError(err, 'get', 'nodes', this.node);
      }
      if (node?.spec?.podCIDR) break;
      if (node && !waitedForCidr) {
        waitedForCidr = true;
        this.log.warn(`node "${this.node}" has no podCIDR yet; waiting up to ${ACQUIRE_TIMEOUT_MS / 1000} s for one (the controller manager's node IPAM assigns it)`);
      } else if (last) this.log.warn(`${last}; retrying every ${ACQUIRE_POLL_MS / 1000} s`);
      if (Date.now() - t0 + ACQUIRE_POLL_MS > ACQUIRE_TIMEOUT_MS) break;
      await sleep(ACQUIRE_POLL_MS, stop);
      stop.throwIfAborted();
    }
    if (!node) throw new Error(`timeout contacting kube-api, failed to patch node "${this.node}". Error: ${last || 'context deadline exceeded'}`);
    if (!node.spec?.podCIDR) throw new Error(`node "${this.node}" pod cidr not assigned`);
    const subnet = nodeSubnet(node)!;
    if (subnet.prefixLen < cfg.Network.prefixLen || !cidrContains(cfg.Network, subnet.ip)) {
      throw new Error(`subnet ${quotedCidr(cfg.Network)} specified in the flannel net config doesn't contain ${quotedCidr(subnet)} PodCIDR of the "${this.node}" node`);
    }
    await this.publish(node, attrs);
    const lease: Lease = { subnet, publicIp: attrs.publicIp, backend: attrs.backend, expiration: null };
    this.lease = lease;
    return lease;
  }

  /** Our annotations on the node, patched as flanneld patches them (retried every 3 s for 30 s). */
  private async publish(node: V1Node, attrs: LeaseAttrs): Promise<void> {
    const p = annotationPatch(nodeAnnotations(node), attrs, this.keys);
    if (!p) return;
    if (p.overwrite) this.log.info(`Overriding public ip with '${p.overwrite}' from node annotation '${this.keys.publicIpOverwrite}'`);
    const t0 = Date.now();
    let last = '';
    for (;;) {
      try {
        await this.patchStatus(p.patch);
        this.log.info({ node: this.node, annotations: p.patch.metadata.annotations }, `annotated node "${this.node}" (${Object.keys(p.patch.metadata.annotations).join(', ')})`);
        return;
      } catch (err) {
        countSourceFailure();
        const msg = describeApiError(err, 'patch', 'nodes/status', this.node);
        if (msg !== last) this.log.warn({ err: msg }, `Failed to patch node "${this.node}": ${msg}; retrying every ${ACQUIRE_POLL_MS / 1000} s`);
        last = msg;
      }
      if (Date.now() - t0 + ACQUIRE_POLL_MS > ACQUIRE_TIMEOUT_MS) {
        throw new Error(`timeout contacting kube-api, failed to patch node "${this.node}". Error: ${last}`);
      }
      await sleep(ACQUIRE_POLL_MS, this.closed.signal);
      this.closed.signal.throwIfAborted();
    }
  }

  /**
   * flanneld's CompleteLease: NetworkUnavailable=False (reason FlannelIsUp)
   * unless --set-node-network-unavailable=false. flanneld logs a failure and
   * never tries again; weft keeps trying in the background, since until it
   * succeeds the scheduler keeps pods off the node.
   */
  async complete(): Promise<void> {
    if (!this.o.setNodeNetworkUnavailable) return;
    const attempt = async () => {
      await this.patchStatus(networkAvailablePatch(new Date()));
      this.log.info(`node "${this.node}": NetworkUnavailable=False (FlannelIsUp)`);
    };
    try {
      await attempt();
    } catch (err) {
      this.log.warn(`CompleteLease execute error err: ${describeApiError(err, 'patch', 'nodes/status', this.node)}; retrying in the background`);
      void this.retrying(attempt, { what: (e) => describeApiError(e, 'patch', 'nodes/status', this.node), deadlineMs: Number.MAX_SAFE_INTEGER, signal: this.closed.signal, anyError: true }).catch(() => undefined);
    }
  }

  /** A kube lease does not expire (flannel's RenewLease is unimplemented). */
  async renew(): Promise<Date | null> {
    return null;
  }

  /** Our node lost our annotations (or was re-listed without them): publish again if it still has our subnet. */
  async recreate(lease: Lease): Promise<boolean> {
    const node = await this.ourNode();
    if (!node) return false;
    const subnet = nodeSubnet(node);
    if (!subnet || formatCidr4(subnet) !== formatCidr4(lease.subnet)) return false;
    await this.publish(node, lease);
    return true;
  }

  // --- peers ---

  /** Every page of the node list, and its resourceVersion. */
  private async listNodes(): Promise<{ nodes: NodeLike[]; rv: string }> {
    for (;;) {
      const nodes: NodeLike[] = [];
      let cont: string | undefined;
      let rv = '';
      try {
        do {
          const page = await this.api.listNode({ limit: LIST_PAGE, _continue: cont }, this.call());
          nodes.push(...page.items);
          rv = page.metadata?.resourceVersion ?? rv;
          cont = page.metadata?._continue || undefined;
        } while (cont);
        return { nodes, rv };
      } catch (err) {
        // A continue token that expired between pages: start the list again.
        if (httpCode(err) === 410 && cont) continue;
        throw err;
      }
    }
  }

  /** A node's lease, or null; logs once per node and reason why a managed node is skipped. */
  private leaseOf(n: NodeLike): Lease | null {
    const name = nodeName(n);
    const r = nodeLease(n, this.keys);
    if (r && 'error' in r) {
      if (this.skipped.get(name) !== r.error) {
        this.skipped.set(name, r.error);
        this.log.warn({ node: name }, `skipping node "${name}" as a peer: ${r.error}`);
      }
      return null;
    }
    this.skipped.delete(name);
    return r ? r.lease : null;
  }

  /** The listed nodes as leases (ours as we hold it, when our node is there), replacing what was known. */
  private snapshot(nodes: NodeLike[]): Lease[] {
    this.known.clear();
    const leases: Lease[] = [];
    for (const n of nodes) {
      const name = nodeName(n);
      if (name === this.node) {
        // Ours only while the node still carries our annotations; else the daemon asks recreate().
        if (this.lease && nodeAnnotations(n)[this.keys.kubeSubnetManager] === 'true') leases.push(this.lease);
        continue;
      }
      const l = this.leaseOf(n);
      if (l) {
        this.known.set(name, l);
        leases.push(l);
      }
    }
    for (const name of this.skipped.keys()) if (!nodes.some((n) => nodeName(n) === name)) this.skipped.delete(name);
    return leases;
  }

  async list(): Promise<{ leases: Lease[]; cursor: string }> {
    const { nodes, rv } = await this.relist(new Outage(this.log, `listing nodes at ${this.server}`, {}), this.closed.signal);
    return { leases: this.snapshot(nodes), cursor: rv };
  }

  /** Lists until it succeeds (or stop aborts), backing off between tries. */
  private async relist(outage: Outage, stop: AbortSignal): Promise<{ nodes: NodeLike[]; rv: string }> {
    for (;;) {
      stop.throwIfAborted();
      try {
        const r = await this.listNodes();
        outage.recovered();
        return r;
      } catch (err) {
        stop.throwIfAborted();
        await outage.failed(new Error(describeApiError(err, 'list', 'nodes')), stop);
      }
    }
  }

  /** What one watched change of a node means for the peers. */
  private eventsOf(type: string, n: NodeLike): LeaseEvent[] {
    const name = nodeName(n);
    if (name === this.node) {
      return type === 'DELETED' && this.lease ? [{ type: 'removed', subnet: this.lease.subnet, cause: 'deleted' }] : [];
    }
    const before = this.known.get(name);
    const after = type === 'DELETED' ? null : this.leaseOf(n);
    if (type === 'DELETED') this.skipped.delete(name);
    const out: LeaseEvent[] = [];
    if (before && (!after || formatCidr4(before.subnet) !== formatCidr4(after.subnet))) out.push({ type: 'removed', subnet: before.subnet, cause: 'deleted' });
    if (after && !(before && sameLease(before, after))) out.push({ type: 'added', lease: after });
    if (after) this.known.set(name, after);
    else this.known.delete(name);
    return out;
  }

  /**
   * Node changes from `cursor` on. A dropped watch resumes from the last
   * resourceVersion seen; 410 Gone re-lists and yields the whole list as a
   * snapshot; while the API cannot be reached nothing is yielded at all.
   */
  async *watch(cursor: string, signal: AbortSignal): AsyncGenerator<WatchBatch> {
    const stop = AbortSignal.any([signal, this.closed.signal]);
    const outage = new Outage(this.log, `watch of nodes at ${this.server}`, {});
    let rv = cursor;
    while (!stop.aborted) {
      const w = await this.openWatch(rv, stop);
      if (!w.lines.isEnded) outage.recovered();
      let ending: { kind: 'resume' } | { kind: 'relist' } | { kind: 'backoff'; err: Error } = { kind: 'resume' };
      try {
        while (ending.kind === 'resume') {
          const chunk = await w.lines.next();
          if (!Array.isArray(chunk)) {
            if (chunk.err) ending = { kind: 'backoff', err: new Error(describeApiError(chunk.err, 'watch', 'nodes')) };
            // A server that closes every watch at once must not be asked again in a loop.
            else if (Date.now() - w.openedAt < 1000) ending = { kind: 'backoff', err: new Error('watch nodes: closed by the server as soon as it opened') };
            break;
          }
          const events: LeaseEvent[] = [];
          for (const { type, object } of chunk) {
            if (type === 'ERROR') {
              const status = object as { code?: number; message?: string };
              if (status.code === 410) {
                this.log.info(`watch of nodes: ${status.message ?? 'Gone'}; listing nodes again`);
                ending = { kind: 'relist' };
              } else {
                ending = { kind: 'backoff', err: new Error(`watch nodes: ${status.code ?? '?'} ${String(status.message ?? '').slice(0, 300)}`) };
              }
              break;
            }
            const objRv = (object.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
            if (objRv) rv = objRv; // a BOOKMARK only moves the cursor
            if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') events.push(...this.eventsOf(type, object as NodeLike));
          }
          if (events.length) yield { kind: 'events', events, cursor: rv };
        }
      } finally {
        w.close();
      }
      if (stop.aborted) return;
      if (ending.kind === 'backoff') await outage.failed(ending.err, stop);
      if (ending.kind === 'relist') {
        let listed;
        try {
          listed = await this.relist(outage, stop);
        } catch {
          return; // stopped
        }
        rv = listed.rv;
        yield { kind: 'snapshot', leases: this.snapshot(listed.nodes), cursor: rv };
      }
    }
  }

  /** One watch from rv; its lines (and how it ended) arrive in `lines`. Never throws. */
  private async openWatch(rv: string, stop: AbortSignal): Promise<{ lines: WatchLines; openedAt: number; close(): void }> {
    const lines = new WatchLines();
    const openedAt = Date.now();
    const timeoutS = WATCH_MIN_S + Math.floor(Math.random() * WATCH_MIN_S);
    // A connection that dies without a word (no FIN, no bookmark) is given up
    // a minute after the server would have ended it anyway.
    let watchdog: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => lines.end(new Error(`no word from the API server in ${timeoutS + 60} s`)), (timeoutS + 60) * 1000);
    };
    const onStop = () => lines.end(null);
    stop.addEventListener('abort', onStop, { once: true });
    arm();
    let controller: AbortController | undefined;
    try {
      controller = await new Watch(this.kc).watch(
        '/api/v1/nodes',
        { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: timeoutS },
        (type: string, object: Record<string, unknown>) => {
          arm();
          lines.push(type, object);
        },
        (err: unknown) => lines.end(err),
      );
    } catch (err) {
      lines.end(err);
    }
    return {
      lines,
      openedAt,
      close: () => {
        clearTimeout(watchdog);
        stop.removeEventListener('abort', onStop);
        controller?.abort();
      },
    };
  }

  async close(): Promise<void> {
    this.closed.abort();
  }
}

/** Same forwarding from the same node: nothing to tell the daemon. */
function sameLease(a: Lease, b: Lease): boolean {
  return (
    formatCidr4(a.subnet) === formatCidr4(b.subnet) &&
    a.publicIp === b.publicIp &&
    JSON.stringify(a.backend) === JSON.stringify(b.backend)
  );
}
