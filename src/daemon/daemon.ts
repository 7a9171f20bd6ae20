// The node agent: flanneld's job with weft's backends as the data plane.
// This file orchestrates and decides nothing itself: the lease source
// (src/subnet/manager.ts) owns leases, the backend (src/backend/) owns
// forwarding state, src/daemon/peers.ts decides which leases are peers.
//
// Start-up order is chosen so that bad input fails before the node is
// touched, and nothing is leased before the node can use it:
//   0. the node lock (one weft per network namespace) and the status socket;
//   1. healthz (before the config, as flanneld, so a liveness probe passes
//      while the config is awaited);
//   2. the network config, the external interface, sanity checks;
//   3. the backend claims its device and port (a TUN name or port someone
//      else holds fails here, with no lease taken);
//   4. the lease; 5. the backend starts on it (address, routes, threads),
//      then flannel's masquerade and forward rules (src/netfilter);
//   6. peers, then subnet.env (pods wired from it can reach the others),
//      ready, and READY=1 to systemd when it asked (NOTIFY_SOCKET).
// After that the daemon only follows the source: every batch of lease
// changes becomes a peer delta, the lease is renewed ahead of its expiry, and
// an outage of the source changes nothing on the node.
import type * as http from 'node:http';
import type * as net from 'node:net';
import { accessSync, constants as fsConstants } from 'node:fs';
import * as path from 'node:path';

import { type Backend, BACKENDS, type ExternalLink } from '../backend';
import { type Cidr4, cidrContains, formatCidr4, formatIp4, parseIp4 } from '../cidr';
import { loadNetConf, type NetConf } from '../config/netconf';
import { FLANNEL_ETCD_ENDPOINTS } from '../defaults';
import { ensureDir } from '../fsutil';
import { addon } from '../native';
import type { Logger } from '../log';
import { createTrafficManager, type TrafficManager } from '../netfilter/manager';
import { countSourceFailure, sourceFailures } from '../store/common';
import { EtcdStore } from '../store/etcd';
import { SqliteStore } from '../store/sqlite';
import type { Lease, LeaseAttrs } from '../store/types';
import { readSubnetEnv, writeSubnetEnv } from '../subnet/env';
import { type LeaseSource, RegistryLeaseSource } from '../subnet/manager';
import { renewDelayMs } from '../subnet/acquire';
import { subnetKey } from '../subnet/key';
import type { DaemonFlags } from './flags';
import { serveHealthz } from './healthz';
import { selectExternalInterface } from './iface';
import { lockNode } from './lock';
import { createMetrics } from './metrics';
import { applyDelta, type PeerPolicy, reconcile, type Reconciled } from './peers';
import { closeStatus, type DaemonStatus, serveStatus, statusSocketPath } from './status';

/** A failure the operator must fix; the message is the whole story. */
export class StartupError extends Error {}

export class StoppedDuringStartup extends Error {
  constructor() {
    super('stopped during start-up');
  }
}

/** What a started daemon runs with; none of it changes after start-up. */
interface Running {
  cfg: NetConf;
  ext: ExternalLink;
  backend: Backend;
  policy: PeerPolicy;
}

/** Per-peer lines at info for a handful of changes, one summary line for more. */
const DETAIL_LIMIT = 10;

export class Daemon {
  private source?: LeaseSource;
  private run?: Running;
  private lease?: Lease;
  private readonly peers = new Map<string, Lease>();
  /** key -> the reason last logged, so each refusal is logged once. */
  private readonly refusals = new Map<string, string>();
  private readonly abort = new AbortController();
  private renewTimer?: NodeJS.Timeout;
  private fatalCheck?: NodeJS.Timeout;
  private healthz?: http.Server;
  private statusServer?: net.Server;
  private nodeLock?: net.Server;
  private traffic?: TrafficManager;
  private stopResync?: () => void;
  /** subnet.env as the last run left it: the previous lease and network. */
  private previousEnv: { network?: Cidr4; subnet?: Cidr4 } = {};
  private ready = false;
  private stopping?: Promise<void>;
  /** Resolves with the exit code once the daemon has stopped. */
  readonly done: Promise<number>;
  private finish!: (code: number) => void;

  constructor(
    private readonly flags: DaemonFlags,
    private readonly log: Logger,
  ) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  get stopRequested(): boolean {
    return this.abort.signal.aborted;
  }

  private checkStopped(): void {
    if (this.abort.signal.aborted) throw new StoppedDuringStartup();
  }

  async start(): Promise<void> {
    const f = this.flags;
    if (f.publicIpv6) throw new StartupError('--public-ipv6: IPv6 is not supported by weft yet (IPv4 networks only)');
    if (f.ipBlackholeRoute) this.log.info('--ip-blackhole-route: no route is added (flanneld adds none either: its check finds the route list readable and stops there)');
    if (f.allowAnySource && f.strictSource) {
      throw new StartupError('--strict-source checks an inner source against the peer that sent it, which --allow-any-source gives up knowing; pick one');
    }

    // 0. One weft per node, a subnet file we can write, and nobody else's status socket.
    try {
      ensureDir(path.dirname(f.subnetFile));
      accessSync(path.dirname(f.subnetFile), fsConstants.W_OK);
    } catch (err) {
      throw new StartupError(`cannot write --subnet-file ${f.subnetFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      this.nodeLock = await lockNode({ pid: process.pid, subnetFile: f.subnetFile });
      this.statusServer = await serveStatus(statusSocketPath(f.subnetFile, f.statusSocket), f.statusSocketGroup, () => this.status(), this.log);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }

    // 1. flanneld serves healthz before it reads its config.
    if (f.healthzPort) {
      const metrics = createMetrics({ status: () => this.status(), sourceErrors: sourceFailures });
      try {
        this.healthz = await serveHealthz({
          ip: f.healthzIp,
          port: f.healthzPort,
          log: this.log,
          ready: () => this.ready,
          routes: { '/metrics': async () => ({ type: metrics.contentType, body: await metrics.metrics() }) },
        });
      } catch (err) {
        throw new StartupError((err as Error).message);
      }
    }

    // 2. The lease source, the network config, the external interface.
    const source = await this.openSource();
    this.source = source;
    let cfg: NetConf;
    let origin = '';
    let publicIp: string | undefined;
    try {
      const conf = await source.networkConfig(this.abort.signal);
      origin = conf.origin;
      publicIp = conf.publicIp;
      cfg = loadNetConf(conf.text, { checkSubnets: source.subnetsFromConfig });
    } catch (err) {
      this.checkStopped();
      throw new StartupError(origin ? `network config ${origin}: ${(err as Error).message}` : (err as Error).message);
    }
    const ext = this.externalLink(cfg, publicIp);
    // flannel's traffic manager: every binary and rule checked now, before
    // anything on the node changes.
    this.traffic = createTrafficManager({ nftables: cfg.EnableNFTables, log: this.log });
    try {
      await this.traffic.preflight({ network: cfg.Network, masq: f.ipMasq, forward: f.iptablesForwardRules, fullyRandom: !f.ipMasqFullyRandomDisable });
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.checkStopped();

    // 3. The backend claims what it needs before anything is leased.
    let backend: Backend;
    try {
      const previous = await source.previousBackend(ext.publicIp);
      backend = BACKENDS[cfg.Backend.Type]({ cfg, ext, previous, allowAnySource: f.allowAnySource, strictSource: f.strictSource, log: this.log });
    } catch (err) {
      this.checkStopped();
      throw new StartupError((err as Error).message);
    }
    this.run = {
      cfg,
      ext,
      backend,
      policy: {
        network: cfg.Network,
        // The kube subnet manager takes subnets from podCIDRs, of whatever length the cluster gives.
        subnetLen: source.subnetsFromConfig ? cfg.SubnetLen : undefined,
        ownSubnet: { ip: 0, prefixLen: 32 }, // set once the lease is ours
        ownAddresses: [ext.publicIp, ext.ifaceAddr],
        backend: cfg.Backend.Type,
        vni: cfg.Backend.Type === 'vxlan' ? cfg.Backend.VNI : undefined,
      },
    };
    this.checkStopped();

    // 4. The lease: ours by PublicIP, else subnet.env's, else a free one.
    const attrs: LeaseAttrs = { publicIp: ext.publicIp, backend: backend.leaseBackend };
    let lease: Lease;
    try {
      lease = await source.acquire(cfg, attrs, this.previousSubnet(cfg));
    } catch (err) {
      this.checkStopped();
      throw new StartupError((err as Error).message);
    }
    this.lease = lease;
    this.run.policy.ownSubnet = lease.subnet;
    this.log.info({ subnet: formatCidr4(lease.subnet), expiration: lease.expiration }, `acquired lease ${formatCidr4(lease.subnet)}`);
    this.checkStopped();

    // 5. The data plane on it, then the masquerade and forward rules.
    try {
      await backend.start(cfg.Network, lease);
      await this.setupRules(cfg, lease);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.checkStopped();

    // 6. Peers, then subnet.env.
    const { leases, cursor } = await source.list();
    const first = reconcile(new Map(), { kind: 'snapshot', leases, cursor }, this.run.policy);
    this.noteRefusals(first);
    applyDelta(this.peers, first.delta);
    backend.setPeers([...this.peers.values()]);
    this.logPeerChanges(first);
    writeSubnetEnv(f.subnetFile, { network: cfg.Network, subnet: lease.subnet, mtu: backend.mtu, ipMasq: f.ipMasq });
    this.log.info({ file: f.subnetFile }, `wrote ${f.subnetFile}`);

    this.scheduleRenew();
    void this.watch(cursor);
    this.ready = true;
    this.log.info({ peers: this.peers.size }, 'ready');
    this.notifySystemd();
    // flanneld's CompleteLease comes last (kube: NetworkUnavailable=False).
    try {
      await source.complete(lease);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    // The packet threads report a fatal error by stopping; a node agent
    // whose data plane is gone must say so and exit, not look healthy.
    this.fatalCheck = setInterval(() => {
      const fatal = backend.stats()?.fatalError;
      if (fatal) {
        this.log.error({ err: fatal }, `data plane failed: ${fatal}`);
        void this.shutdown(1);
      }
    }, 1000);
  }

  /** flannel's order (main.go): clean up the other manager, init, masquerade, forward, resync. */
  private async setupRules(cfg: NetConf, lease: Lease): Promise<void> {
    const f = this.flags;
    const tm = this.traffic!;
    await tm.cleanupOther();
    await tm.init();
    if (f.ipMasq) {
      await tm.setupMasq({
        network: cfg.Network,
        subnet: lease.subnet,
        prevNetwork: this.previousEnv.network ?? null,
        prevSubnet: this.previousEnv.subnet ?? null,
        fullyRandom: !f.ipMasqFullyRandomDisable,
      });
    }
    if (f.iptablesForwardRules) await tm.setupForward(cfg.Network);
    this.stopResync = tm.startResync(f.iptablesResync);
  }

  /** systemd's Type=notify: READY=1 once subnet.env is written, as flanneld sends it. */
  private notifySystemd(): void {
    const socket = process.env.NOTIFY_SOCKET;
    if (!socket) return;
    try {
      addon.sdNotify(socket, 'READY=1');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `cannot tell systemd we are ready (NOTIFY_SOCKET ${socket}): ${(err as Error).message}`);
    }
  }

  /** The Kubernetes API with --kube-subnet-mgr; else etcd when endpoints are given, else the embedded store, said plainly either way. */
  private async openSource(): Promise<LeaseSource> {
    const f = this.flags;
    if (f.kubeSubnetMgr) {
      // Loaded only here: the Kubernetes client takes half a second to load, which etcd and embedded nodes need not pay.
      const { KubeLeaseSource } = await import('../subnet/kube');
      let source: LeaseSource;
      try {
        source = new KubeLeaseSource({
          apiUrl: f.kubeApiUrl,
          kubeconfigFile: f.kubeconfigFile,
          annotationPrefix: f.kubeAnnotationPrefix,
          netConfigPath: f.netConfigPath,
          setNodeNetworkUnavailable: f.setNodeNetworkUnavailable,
          env: process.env,
          log: this.log,
        });
      } catch (err) {
        throw new StartupError((err as Error).message);
      }
      this.log.info({ store: source.description }, `lease store: the ${source.description} (node annotations ${f.kubeAnnotationPrefix})`);
      return source;
    }
    if (f.etcdEndpoints) {
      const store = new EtcdStore({
        endpoints: f.etcdEndpoints,
        prefix: f.etcdPrefix,
        keyFile: f.etcdKeyfile || undefined,
        certFile: f.etcdCertfile || undefined,
        caFile: f.etcdCafile || undefined,
        username: f.etcdUsername || undefined,
        password: f.etcdPassword || undefined,
        log: this.log,
      });
      this.log.info({ store: store.description, prefix: store.prefix }, `lease store: etcd at ${store.endpoints.join(',')}, prefix ${store.prefix}`);
      return new RegistryLeaseSource({ store, config: { fromStore: store }, ttlSeconds: f.leaseTtl, log: this.log });
    }
    let store: SqliteStore;
    try {
      store = new SqliteStore({ path: f.storePath, log: this.log });
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.log.warn(
      { store: store.description },
      `lease store: the embedded store ${store.path} (no --etcd-endpoints given); flanneld would have used etcd at its default endpoints ` +
        `${FLANNEL_ETCD_ENDPOINTS}. Only daemons sharing this file see each other.`,
    );
    return new RegistryLeaseSource({ store, config: { fromFile: f.netConfigPath }, ttlSeconds: f.leaseTtl, log: this.log });
  }

  /** publicIp: the source's address to publish (kube: node-public-ip), which stands in for --public-ip as in flanneld. */
  private externalLink(cfg: NetConf, publicIp?: string): ExternalLink {
    let ext;
    try {
      ext = selectExternalInterface(publicIp ? { ...this.flags, publicIp } : this.flags, addon.netlink, (line) => this.log.info(line));
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    const link: ExternalLink = { name: ext.name, index: ext.index, mtu: ext.mtu, ifaceAddr: parseIp4(ext.ifaceAddr), publicIp: parseIp4(ext.publicIp) };
    this.log.info({ iface: ext.name, ifaceAddr: ext.ifaceAddr, publicIp: ext.publicIp }, `using interface ${ext.name} (${ext.ifaceAddr}), public IP ${ext.publicIp}`);
    // An underlay address inside the overlay would route our own datagrams
    // back into the overlay: every packet to us would loop.
    for (const [what, ip] of [
      ['interface address', link.ifaceAddr],
      ['public IP', link.publicIp],
    ] as const) {
      if (cidrContains(cfg.Network, ip)) {
        throw new StartupError(
          `the ${what} ${formatIp4(ip)} (interface ${ext.name}) lies inside the Network ${formatCidr4(cfg.Network)}: ` +
            'pick the node\'s underlay interface (--iface) or --public-ip, not an overlay one such as cni0',
        );
      }
    }
    return link;
  }

  private previousSubnet(cfg: NetConf): Cidr4 | null {
    const file = this.flags.subnetFile;
    let read;
    try {
      read = readSubnetEnv(file);
    } catch (err) {
      this.log.warn(`ignoring ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return null;
    }
    if (!read) return null;
    for (const w of read.warnings) this.log.warn(`ignoring part of ${file}: ${w}`);
    this.previousEnv = { network: read.env.network, subnet: read.env.subnet };
    const prev = read.env.subnet;
    if (!prev) return null;
    if (!cidrContains(cfg.Network, prev.ip) || prev.prefixLen < cfg.Network.prefixLen) {
      this.log.warn(`ignoring FLANNEL_SUBNET in ${file}: ${formatCidr4(prev)} is outside the Network ${formatCidr4(cfg.Network)}`);
      return null;
    }
    return prev;
  }

  private async watch(cursor: string): Promise<void> {
    const run = this.run!;
    try {
      for await (const batch of this.source!.watch(cursor, this.abort.signal)) {
        const r = reconcile(this.peers, batch, run.policy);
        this.noteRefusals(r);
        if (r.own && !(await this.ownLeaseGone(r.own))) return;
        if (r.delta.upserts.length || r.delta.removed.length) {
          run.backend.updatePeers(r.delta.upserts, r.delta.removed);
          applyDelta(this.peers, r.delta);
          this.logPeerChanges(r);
        }
      }
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.log.error({ err: (err as Error).message }, `lease watch failed: ${(err as Error).message}`);
        void this.shutdown(1);
      }
    }
  }

  /**
   * Our own lease vanished. An operator's delete is a revocation (flanneld's
   * rule and message); a lapse the source can tell apart, or a store that
   * lost its data (a snapshot without us), is not: take the same subnet
   * again. False when the daemon is stopping.
   */
  private async ownLeaseGone(own: NonNullable<Reconciled['own']>): Promise<boolean> {
    const lease = this.lease!;
    const s = formatCidr4(lease.subnet);
    const recoverable = own.kind === 'missing' || (own.cause === 'expired' && this.source!.lapsesAreRecoverable);
    if (!recoverable) {
      this.revoked();
      return false;
    }
    const why = own.kind === 'missing' ? 'the store lost our lease' : 'our lease lapsed (the store says it expired, nobody deleted it)';
    try {
      if (!(await this.source!.recreate(lease))) {
        this.log.error(`${why}, and another node holds ${s} now`);
        this.revoked();
        return false;
      }
      this.log.warn({ subnet: s }, `${why}; re-created ${s}`);
      if (lease.expiration) this.renewSoon(0);
    } catch (err) {
      // The store is still unsteady: renewal writes the key again shortly.
      this.log.warn({ err: (err as Error).message }, `${why}; cannot re-create ${s} yet, retrying`);
      this.renewSoon(1000);
    }
    return true;
  }

  private revoked(): void {
    // flanneld's words, and its exit code: a revoked lease is a clean stop.
    this.log.error('Lease has been revoked. Shutting down daemon.');
    void this.shutdown(0);
  }

  private noteRefusals(r: Reconciled): void {
    for (const { key, reason, expected } of r.refused) {
      if (this.refusals.get(key) === reason) continue;
      this.refusals.set(key, reason);
      if (expected) this.log.warn({ key }, reason);
      else this.log.warn({ key, reason }, `refusing lease ${key} as a peer: ${reason}`);
    }
    for (const l of r.delta.upserts) this.refusals.delete(subnetKey(l.subnet));
  }

  private logPeerChanges(r: Reconciled): void {
    const { upserts, removed } = r.delta;
    if (upserts.length + removed.length > DETAIL_LIMIT) {
      this.log.info({ added: upserts.length, removed: removed.length, peers: this.peers.size }, `peers: ${upserts.length} added or changed, ${removed.length} removed, ${this.peers.size} in all`);
      return;
    }
    for (const l of upserts) {
      const mac = l.backend.type === 'vxlan' ? ` (${l.backend.vtepMac})` : '';
      this.log.info({ subnet: formatCidr4(l.subnet), publicIp: formatIp4(l.publicIp) }, `peer ${formatCidr4(l.subnet)} via ${formatIp4(l.publicIp)}${mac}`);
    }
    for (const s of removed) this.log.info(`peer ${formatCidr4(s)} removed`);
  }

  private scheduleRenew(): void {
    const exp = this.lease!.expiration;
    if (!exp) return; // a reservation, or a lease that never expires (kube)
    // flannel renews at expiry minus the margin. A margin as long as the
    // lease (possible only with a short --lease-ttl) would renew in a loop:
    // then renew halfway instead.
    const ttlMinutes = this.flags.leaseTtl / 60;
    const margin = this.flags.subnetLeaseRenewMargin < ttlMinutes ? this.flags.subnetLeaseRenewMargin : ttlMinutes / 2;
    this.renewTimer = setTimeout(() => void this.renew(), renewDelayMs(exp, margin));
  }

  private renewSoon(ms: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), ms);
  }

  private async renew(): Promise<void> {
    const lease = this.lease!;
    try {
      const expiration = await this.source!.renew(lease);
      this.lease = { ...lease, expiration };
      this.log.info({ subnet: formatCidr4(lease.subnet), expiration }, `Lease renewed, new expiration: ${expiration?.toISOString() ?? 'never'}`);
      this.scheduleRenew();
    } catch (err) {
      if (this.abort.signal.aborted) return;
      countSourceFailure();
      // flannel retries each minute; a short --lease-ttl needs sooner.
      const retryMs = Math.min(60_000, this.flags.leaseTtl * 250);
      this.log.warn({ err: (err as Error).message }, `Error renewing lease (trying again in ${retryMs / 1000} s): ${(err as Error).message}`);
      this.renewSoon(retryMs);
    }
  }

  /** One line for SIGUSR1: what the node holds now. */
  summary(): string {
    const s = this.status();
    if (!s.subnet) return 'starting';
    const c = s.counters;
    const drops = c ? Object.entries(c).filter(([k, v]) => k.includes('_drop_') && v.packets > 0).map(([k, v]) => `${k}=${v.packets}`) : [];
    return `lease ${s.subnet} (${s.backend}), ${s.peers.length} peers, ${s.ready ? 'ready' : 'not ready'}` +
      (c ? `, tx ${c.tx_packets.packets} rx ${c.rx_packets.packets} packets, drops: ${drops.length ? drops.join(' ') : 'none'}` : '');
  }

  status(): DaemonStatus {
    const run = this.run;
    const lease = this.lease;
    const backend = run?.backend;
    const stats = lease ? backend?.stats() : null;
    return {
      pid: process.pid,
      backend: run?.cfg.Backend.Type ?? 'udp',
      network: run ? formatCidr4(run.cfg.Network) : '',
      subnet: lease ? formatCidr4(lease.subnet) : '',
      publicIp: run ? formatIp4(run.ext.publicIp) : '',
      vtepMac: backend?.leaseBackend.type === 'vxlan' ? backend.leaseBackend.vtepMac : null,
      tun: backend?.device ?? null,
      mtu: backend?.mtu ?? 0,
      leaseExpiration: lease?.expiration?.toISOString() ?? null,
      store: this.source?.description ?? '',
      ready: this.ready,
      peers: lease && backend ? backend.peers() : [],
      counters: stats?.counters ?? null,
    };
  }

  /** Stops everything this daemon made; the lease stays for the restart. */
  shutdown(code = 0): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      this.abort.abort();
      clearTimeout(this.renewTimer);
      clearInterval(this.fatalCheck);
      this.stopResync?.();
      await this.traffic?.close().catch(() => undefined);
      this.run?.backend.close();
      this.healthz?.close();
      if (this.statusServer) closeStatus(this.statusServer, statusSocketPath(this.flags.subnetFile, this.flags.statusSocket));
      await this.source?.close().catch(() => undefined);
      this.nodeLock?.close();
      this.log.info({ code }, code === 0 ? 'Exiting cleanly...' : 'stopped');
      this.finish(code);
    })();
    return this.stopping;
  }
}
