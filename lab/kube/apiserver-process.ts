// Runs the lab API server (apiserver.ts) as a process of its own, on
// loopback or inside a lab namespace, and administers it from the test: its
// state, its faults and its logs. The admin channel is HTTP over the unix
// socket <dir>/admin.sock: a socket bound to a path is found through the
// file system, so the test reaches it from whatever network namespace it
// is in, with no route to the server's address. The request log is read
// straight from <dir>/requests.jsonl, so it covers every run on the dir.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import { freePort } from '../etcd';
import type { Netns } from '../netns';
import { until } from '../wait';
import type { Fault, Identity, RequestRecord, UsersFile } from './apiserver';
import type { JsonObject } from './patch';
import { ensurePki, writeInClusterFiles, writeKubeconfig } from './pki';
import { ADMIN_RULES, FLANNEL_RULES } from './rbac';

export const ADMIN_TOKEN = 'weft-lab-admin-token';
export const ADMIN_USER = 'kubernetes-admin';
/** The identity kube-flannel's pods run as. */
export const FLANNEL_SA = { namespace: 'kube-flannel', name: 'flannel' };
export const FLANNEL_USER = `system:serviceaccount:${FLANNEL_SA.namespace}:${FLANNEL_SA.name}`;

export const flannelIdentity = (): Identity => ({
  user: FLANNEL_USER,
  groups: ['system:serviceaccounts', `system:serviceaccounts:${FLANNEL_SA.namespace}`, 'system:authenticated'],
  rules: FLANNEL_RULES,
});

export interface KubeApiOptions {
  /** State, certificates, logs and the admin socket live here; created if missing. */
  dir: string;
  /** Run inside this namespace; listenIp must be one of its addresses. */
  ns?: Netns;
  /** Default 127.0.0.1. */
  listenIp?: string;
  /** Default: a free port on loopback, 6443 in a namespace. */
  port?: number;
  /** How often a watch that allows bookmarks gets one. Default 60 s, as the real server. */
  bookmarkMs?: number;
  startTimeoutMs?: number;
}

export interface LabNodeSpec {
  name: string;
  podCIDR?: string;
  /** Default [podCIDR]. */
  podCIDRs?: string[];
  internalIP?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Default: Ready=True. */
  conditions?: JsonObject[];
}

/** A Node as a kubelet registers it and node-ipam fills in spec.podCIDR(s). */
export function labNode(s: LabNodeSpec): JsonObject {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cidrs = s.podCIDRs ?? (s.podCIDR ? [s.podCIDR] : []);
  const spec: JsonObject = cidrs.length ? { podCIDR: cidrs[0], podCIDRs: cidrs } : {};
  const addresses: JsonObject[] = [...(s.internalIP ? [{ type: 'InternalIP', address: s.internalIP }] : []), { type: 'Hostname', address: s.name }];
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: s.name,
      labels: { 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': s.name, 'kubernetes.io/os': 'linux', ...s.labels },
      annotations: { ...s.annotations },
    },
    spec,
    status: {
      addresses,
      conditions: s.conditions ?? [
        { type: 'Ready', status: 'True', lastHeartbeatTime: now, lastTransitionTime: now, reason: 'KubeletReady', message: 'kubelet is posting ready status' },
      ],
      nodeInfo: { kubeletVersion: 'v1.32.0', operatingSystem: 'linux', architecture: 'amd64' },
    },
  };
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

export class KubeApiServer {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly opts: KubeApiOptions,
    readonly host: string,
    readonly port: number,
    readonly caCert: string,
  ) {}

  /** https://ip:port */
  get url(): string {
    return `https://${this.host}:${this.port}`;
  }
  get logFile(): string {
    return path.join(this.opts.dir, 'apiserver.log');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  private get socket(): string {
    return path.join(this.opts.dir, 'admin.sock');
  }

  static async start(opts: KubeApiOptions): Promise<KubeApiServer> {
    fs.mkdirSync(opts.dir, { recursive: true });
    const host = opts.listenIp ?? '127.0.0.1';
    const port = opts.port ?? (opts.ns ? 6443 : await freePort(host));
    const pki = ensurePki(opts.dir, host);
    const usersFile = path.join(opts.dir, 'users.json');
    if (!fs.existsSync(usersFile)) {
      const users: UsersFile = { tokens: { [ADMIN_TOKEN]: { user: ADMIN_USER, groups: ['system:masters', 'system:authenticated'], rules: ADMIN_RULES } } };
      fs.writeFileSync(usersFile, JSON.stringify(users, null, 2));
    }
    const s = new KubeApiServer(opts, host, port, pki.caCert);
    await s.launch();
    return s;
  }

  private async launch(): Promise<void> {
    const o = this.opts;
    const args = [path.join(__dirname, 'apiserver.js'), '--dir', o.dir, '--listen', `${this.host}:${this.port}`, '--bookmark-ms', String(o.bookmarkMs ?? 60_000)];
    const log = fs.openSync(this.logFile, 'a');
    const spawnOpts = { stdio: ['ignore', log, log] as ('ignore' | number)[] };
    const c = o.ns ? o.ns.spawn(process.execPath, args, spawnOpts) : spawn(process.execPath, args, spawnOpts);
    fs.closeSync(log);
    this.child = c;
    running.add(c);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const x of running) x.kill('SIGKILL');
      });
    }
    let exitInfo: string | null = null;
    this.exited = new Promise((resolve) => {
      c.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        running.delete(c);
        resolve();
      });
    });
    const ms = o.startTimeoutMs ?? 15_000;
    try {
      await until(`lab API server at ${this.url}`, ms, async () => {
        if (exitInfo !== null) throw new Error('exited');
        return (await this.admin('GET', '/healthz')) as JsonObject;
      });
    } catch {
      await this.stop();
      const tail = fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
      throw new Error(`lab API server at ${this.url} did not start within ${ms} ms (${exitInfo ?? 'running'}); log ${this.logFile}:\n${tail}`);
    }
  }

  /** SIGTERM: open watches are cut, the state is already on disk. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL: a crash. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Stops it and starts it again on the same dir, address and port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  // --- identities ---

  /** Adds (or replaces) a bearer token; kept in <dir>/users.json across restarts. */
  async addUser(token: string, id: Identity): Promise<void> {
    await this.admin('PUT', `/users/${encodeURIComponent(token)}`, id);
  }

  /** A kubeconfig for token at file (default <dir>/kubeconfig-<user>.json). */
  kubeconfig(token: string, user: string, file = path.join(this.opts.dir, `kubeconfig-${user.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`)): string {
    return writeKubeconfig(file, { server: this.url, caCert: this.caCert, user, token });
  }

  /** The service-account files (token, ca.crt, namespace) in dir, and the KUBERNETES_SERVICE_* environment. */
  inClusterFiles(dir: string, token: string, namespace: string): { dir: string; env: Record<string, string> } {
    return writeInClusterFiles(dir, { host: this.host, port: this.port, caCert: this.caCert, token, namespace });
  }

  // --- the cluster's objects ---

  /** The store's current resourceVersion (that of its last write). */
  async resourceVersion(): Promise<number> {
    return ((await this.admin('GET', '/healthz')) as { resourceVersion: number }).resourceVersion;
  }

  async addNode(spec: LabNodeSpec): Promise<JsonObject> {
    return this.putNode(labNode(spec));
  }

  /** Stores node as given (as a controller would write it); an event for every watch. */
  async putNode(node: JsonObject): Promise<JsonObject> {
    const name = (node.metadata as JsonObject).name as string;
    return (await this.admin('PUT', `/nodes/${encodeURIComponent(name)}`, node)) as JsonObject;
  }

  /** The stored node, or null. */
  async node(name: string): Promise<JsonObject | null> {
    return (await this.admin('GET', `/nodes/${encodeURIComponent(name)}`, undefined, [404])) as JsonObject | null;
  }

  async deleteNode(name: string): Promise<void> {
    await this.admin('DELETE', `/nodes/${encodeURIComponent(name)}`);
  }

  async addPod(namespace: string, name: string, nodeName: string): Promise<JsonObject> {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: {}, spec: { nodeName, containers: [{ name: 'main', image: 'weft' }] }, status: { phase: 'Running' } };
    return (await this.admin('PUT', `/pods/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`, pod)) as JsonObject;
  }

  // --- faults ---

  /**
   * Closes every open watch; resolves to how many there were. 'cut' resets
   * the connections (a crash, a broken network); 'end' finishes the streams
   * cleanly (the server's own watch timeout).
   */
  async dropWatches(how: 'cut' | 'end' = 'cut'): Promise<number> {
    return ((await this.admin('POST', '/drop-watches', { how })) as { dropped: number }).dropped;
  }

  /** Forgets the watch history: a watch or continued list from an older resourceVersion gets 410. Resolves to the new floor. */
  async compact(): Promise<number> {
    return ((await this.admin('POST', '/compact')) as { floor: number }).floor;
  }

  /** Sends a BOOKMARK now to every watch that allows them; resolves to how many. */
  async bookmark(): Promise<number> {
    return ((await this.admin('POST', '/bookmark')) as { sent: number }).sent;
  }

  /**
   * The next fault.count requests matching fault.match get fault.code as a
   * Status (a watch given 410 gets it as an ERROR event, as the real one).
   */
  async failNext(fault: Fault): Promise<void> {
    await this.admin('POST', '/faults', fault);
  }

  // --- what was asked ---

  requests(): RequestRecord[] {
    const f = path.join(this.opts.dir, 'requests.jsonl');
    if (!fs.existsSync(f)) return [];
    return fs
      .readFileSync(f, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as RequestRecord);
  }

  /**
   * What user asked for, as "verb resource[/subresource]" (e.g. "patch
   * nodes/status"), split by whether it was allowed; to hold against a
   * ClusterRole's rules.
   */
  access(user: string): { allowed: string[]; denied: string[] } {
    const allowed = new Set<string>();
    const denied = new Set<string>();
    for (const r of this.requests()) {
      if (r.user !== user || !r.verb) continue;
      const what = `${r.verb} ${r.subresource ? `${r.resource}/${r.subresource}` : r.resource}`;
      (r.code === 403 ? denied : allowed).add(what);
    }
    return { allowed: [...allowed].sort(), denied: [...denied].sort() };
  }

  /** One admin request; resolves to the JSON answer (null for a status in nullOn). */
  private admin(method: string, urlPath: string, body?: unknown, nullOn: number[] = []): Promise<unknown> {
    const text = body === undefined ? '' : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socket, method, path: urlPath, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }, timeout: 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const out = JSON.parse(Buffer.concat(chunks).toString() || 'null') as unknown;
            if (res.statusCode === 200) resolve(out);
            else if (nullOn.includes(res.statusCode ?? 0)) resolve(null);
            else reject(new Error(`lab API server admin ${method} ${urlPath}: ${res.statusCode} ${JSON.stringify(out)}`));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`lab API server admin ${method} ${urlPath}: no answer in 10 s`)));
      req.on('error', reject);
      req.end(text);
    });
  }
}
