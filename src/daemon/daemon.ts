// The node agent: flanneld's job with weft's engine as the data plane.
//
// Start-up order is chosen so that bad input fails before the node is
// touched: flags, the network config and the external interface are all
// checked first; the lease is taken next; only then is the TUN made, and
// subnet.env is written once traffic can flow. After that the daemon only
// follows the store: every lease event becomes a peer update, the lease is
// renewed ahead of its expiry, and a store outage changes nothing on the
// node (the engine keeps its last peer table).
import * as dgram from 'node:dgram';
import { accessSync, constants as fsConstants, mkdirSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

import { cidrContains, formatCidr4, type Cidr4 } from '../cidr';
import { loadNetConf, type NetConf } from '../config/netconf';
import { Engine, type Peer } from '../engine';
import type { Logger } from '../log';
import { addon, type WireFormat } from '../native';
import { EtcdStore } from '../store/etcd';
import { SqliteStore } from '../store/sqlite';
import { ConfigNotFoundError, type Lease, type LeaseAttrs, type LeaseStore, SubnetTakenError } from '../store/types';
import { acquireLease, renewDelayMs } from '../subnet/acquire';
import { readSubnetEnv, writeSubnetEnv } from '../subnet/env';
import { subnetKey } from '../subnet/key';
import { sleep } from '../sleep';
import { isMac, randomVtepMac } from '../vtep';
import type { DaemonFlags } from './flags';
import { selectExternalInterface, type ExternalInterface } from './iface';
import { peerFromLease, sameSubnet } from './peers';

/** A failure the operator must fix; the message is the whole story. */
export class StartupError extends Error {}

export class Stopped extends Error {
  constructor() {
    super('stopped during start-up');
  }
}

export interface DaemonStatus {
  backend: WireFormat;
  network: string;
  subnet: string;
  publicIp: string;
  vtepMac: string | null;
  tun: string;
  mtu: number;
  leaseExpiration: string | null;
  ready: boolean;
  peers: Peer[];
  counters: ReturnType<Engine['stats']>['counters'];
}

export function statusSocketPath(flags: DaemonFlags): string {
  return flags.statusSocket || path.join(path.dirname(flags.subnetFile), 'weft.sock');
}

export class Daemon {
  private store?: LeaseStore;
  private engine?: Engine;
  private lease?: Lease;
  private cfg?: NetConf;
  private backend: WireFormat = 'vxlan';
  private attrs?: LeaseAttrs;
  private peers = new Map<string, Peer>(); // subnet key -> peer
  private readonly abort = new AbortController();
  private renewTimer?: NodeJS.Timeout;
  private engineCheck?: NodeJS.Timeout;
  private healthz?: http.Server;
  private statusServer?: net.Server;
  private ready = false;
  private stopping?: Promise<void>;
  /** Resolves with the exit code once the daemon has stopped. */
  readonly done: Promise<number>;
  private finish!: (code: number) => void;

  private readonly leaseTtl: number;

  constructor(
    private readonly flags: DaemonFlags,
    private readonly log: Logger,
  ) {
    this.leaseTtl = flags.leaseTtl;
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  get stopRequested(): boolean {
    return this.abort.signal.aborted;
  }

  private checkStopped(): void {
    if (this.abort.signal.aborted) throw new Stopped();
  }


  async start(): Promise<void> {
    const f = this.flags;
    if (f.kubeSubnetMgr) {
      throw new StartupError('--kube-subnet-mgr is not supported yet: weft takes leases from etcd (--etcd-endpoints) or its embedded store');
    }
    if (f.ipMasq) {
      throw new StartupError('--ip-masq is not supported yet: weft installs no masquerade rules; run without it (FLANNEL_IPMASQ=false)');
    }

    // 1. The network config: from the file for the embedded store (checked
    //    before the store is even opened), from <prefix>/config for etcd.
    let confText: string;
    let confSource: string;
    if (f.etcdEndpoints) {
      const etcd = new EtcdStore({
        endpoints: f.etcdEndpoints,
        prefix: f.etcdPrefix,
        keyFile: f.etcdKeyfile || undefined,
        certFile: f.etcdCertfile || undefined,
        caFile: f.etcdCafile || undefined,
        username: f.etcdUsername || undefined,
        password: f.etcdPassword || undefined,
        log: this.log,
      });
      this.store = etcd;
      confText = await this.networkConfigFromStore(etcd);
      confSource = `${f.etcdPrefix}/config`;
    } else {
      try {
        confText = readFileSync(f.netConfigPath, 'utf8');
      } catch (err) {
        throw new StartupError(`cannot read --net-config-path ${f.netConfigPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      confSource = f.netConfigPath;
    }
    try {
      this.cfg = loadNetConf(confText);
    } catch (err) {
      throw new StartupError(`network config ${confSource}: ${(err as Error).message}`);
    }
    const cfg = this.cfg;
    this.backend = cfg.Backend.Type;

    // 2. The external interface and what we will publish.
    let ext: ExternalInterface;
    try {
      ext = selectExternalInterface(f, addon.netlink, (line) => this.log.info(line));
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.log.info({ iface: ext.name, ifaceAddr: ext.ifaceAddr, publicIp: ext.publicIp }, `using interface ${ext.name} (${ext.ifaceAddr}), public IP ${ext.publicIp}`);

    // A taken port fails here, before a lease exists that nobody would use.
    await assertPortFree(ext.ifaceAddr, cfg.Backend.Port);
    const underlayMtu = (cfg.Backend.Type === 'vxlan' ? cfg.Backend.MTU : undefined) ?? ext.mtu;
    const overlayMtu = underlayMtu - addon.encap.overhead[cfg.Backend.Type];
    if (overlayMtu < 576) throw new StartupError(`MTU of "${ext.name}" (${underlayMtu}) leaves ${overlayMtu} for the overlay; need >= 576`);
    try {
      mkdirSync(path.dirname(f.subnetFile), { recursive: true });
      accessSync(path.dirname(f.subnetFile), fsConstants.W_OK);
    } catch (err) {
      throw new StartupError(`cannot write --subnet-file ${f.subnetFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    await this.serveHealthz();

    let store: LeaseStore;
    try {
      store = this.store ?? new SqliteStore({ path: f.storePath, log: this.log, networkConfig: confText });
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.store = store;
    this.checkStopped();

    // 3. The lease: ours by PublicIP, else subnet.env's, else a free one.
    const previous = this.previousSubnet(cfg);
    const vtepMac = cfg.Backend.Type === 'vxlan' ? await this.reusableVtepMac(store, ext.publicIp) : null;
    this.attrs =
      cfg.Backend.Type === 'vxlan'
        ? { PublicIP: ext.publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: cfg.Backend.VNI, VtepMAC: vtepMac } }
        : { PublicIP: ext.publicIp, PublicIPv6: null };
    const lease: Lease = await acquireLease(store, cfg, this.attrs, { previousSubnet: previous, ttlSeconds: this.leaseTtl, log: this.log });
    this.lease = lease;
    const subnet = lease.subnet;
    this.log.info({ subnet: formatCidr4(subnet), expiration: lease.expiration }, `acquired lease ${formatCidr4(subnet)}`);
    this.checkStopped();

    // 4. The data plane. From here on a failure must undo the TUN.
    const vni = cfg.Backend.Type === 'vxlan' ? cfg.Backend.VNI : 1;
    try {
      this.engine = await Engine.create({
        backend: cfg.Backend.Type,
        iface: ext.name,
        bindIp: ext.ifaceAddr,
        network: formatCidr4(cfg.Network),
        subnet: formatCidr4(subnet),
        vni,
        port: cfg.Backend.Port,
        vtepMac: vtepMac ?? undefined,
        mtu: (cfg.Backend.Type === 'vxlan' ? cfg.Backend.MTU : undefined) ?? ext.mtu,
        allowAnySource: f.allowAnySource,
      });
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    // A SIGTERM that came while the TUN was being made: shutdown() has run
    // already and could not see it.
    if (this.abort.signal.aborted) {
      this.engine.close();
      throw new Stopped();
    }
    this.log.info({ tun: this.engine.tunName, mtu: this.engine.mtu, port: this.engine.port }, `data plane up on ${this.engine.tunName}`);

    // 5. Peers, then subnet.env: pods wired from it can reach the others.
    const { leases, cursor } = await store.listLeases();
    this.replacePeers(leases);
    writeSubnetEnv(f.subnetFile, { network: cfg.Network, subnet, mtu: this.engine.mtu, ipMasq: false });
    this.log.info({ file: f.subnetFile }, `wrote ${f.subnetFile}`);

    this.scheduleRenew();
    void this.watch(cursor);
    await this.serveStatus();
    this.ready = true;
    this.log.info({ peers: this.peers.size }, 'ready');
    // The packet threads report a fatal error by stopping; a node agent
    // whose data plane is gone must say so and exit, not look healthy.
    this.engineCheck = setInterval(() => {
      const fatal = this.engine?.stats().fatalError;
      if (fatal) {
        this.log.error({ err: fatal }, `data plane failed: ${fatal}`);
        void this.shutdown(1);
      }
    }, 1000);
  }

  private async networkConfigFromStore(store: LeaseStore): Promise<string> {
    let delay = 1000;
    for (;;) {
      this.checkStopped();
      try {
        return await store.getNetworkConfig();
      } catch (err) {
        if (err instanceof ConfigNotFoundError) {
          this.log.error(err.message);
          delay = 1000; // flannel polls for the config every second
        } else {
          this.log.warn({ err: (err as Error).message }, `cannot read the network config, retrying in ${delay} ms: ${(err as Error).message}`);
        }
      }
      await sleep(delay, this.abort.signal);
      delay = Math.min(delay * 2, 5000);
    }
  }

  private previousSubnet(cfg: NetConf): Cidr4 | null {
    let env;
    try {
      env = readSubnetEnv(this.flags.subnetFile);
    } catch (err) {
      this.log.warn(`ignoring ${this.flags.subnetFile}: ${(err as Error).message}`);
      return null;
    }
    if (!env?.subnet) return null;
    if (!cidrContains(cfg.Network, env.subnet.ip) || env.subnet.prefixLen < cfg.Network.prefixLen) {
      this.log.warn(
        `ignoring FLANNEL_SUBNET in ${this.flags.subnetFile}: ${formatCidr4(env.subnet)} is outside the Network ${formatCidr4(cfg.Network)}`,
      );
      return null;
    }
    return env.subnet;
  }

  /** Our VtepMAC from our own lease, so peers' entries stay valid across restarts. */
  private async reusableVtepMac(store: LeaseStore, publicIp: string): Promise<string> {
    const { leases } = await store.listLeases();
    const own = leases.find((l) => l.attrs.PublicIP === publicIp && l.attrs.BackendType === 'vxlan');
    const mac = (own?.attrs.BackendData as { VtepMAC?: string } | undefined)?.VtepMAC;
    if (own && isMac(mac)) {
      this.log.info({ vtepMac: mac }, `reusing VtepMAC ${mac} from lease ${formatCidr4(own.subnet)}`);
      return mac.toLowerCase();
    }
    return randomVtepMac();
  }

  private peerFor(lease: Lease): Peer | null {
    if (sameSubnet(lease.subnet, this.lease!.subnet)) return null;
    const v = peerFromLease(lease, this.backend);
    if ('ignored' in v) {
      this.log.debug(`ignoring lease ${subnetKey(lease.subnet)}: ${v.ignored}`);
      return null;
    }
    return v.peer;
  }

  private replacePeers(leases: Lease[]): void {
    const next = new Map<string, Peer>();
    for (const l of leases) {
      const p = this.peerFor(l);
      if (p) next.set(p.subnet, p);
    }
    for (const [k, p] of next) if (!samePeer(this.peers.get(k), p)) this.log.info(p, `peer ${k} via ${p.publicIp}`);
    for (const k of this.peers.keys()) if (!next.has(k)) this.log.info(`peer ${k} removed`);
    this.peers = next;
    this.engine!.setPeers([...next.values()]);
  }

  private async watch(cursor: string): Promise<void> {
    const own = this.lease!.subnet;
    try {
      for await (const batch of this.store!.watchLeases(cursor, this.abort.signal)) {
        if (batch.kind === 'snapshot') {
          // A snapshot without our lease is a store that lost its data (a
          // wiped or restored etcd), not an operator's delete (that comes as
          // an event): take the same subnet again if it is still free.
          if (!batch.leases.some((l) => sameSubnet(l.subnet, own)) && !(await this.recreateLease())) return this.revoked();
          this.replacePeers(batch.leases);
          continue;
        }
        const upserts: Peer[] = [];
        const removed: string[] = [];
        for (const ev of batch.events) {
          if (ev.type === 'removed') {
            if (sameSubnet(ev.subnet, own)) return this.revoked();
            const k = formatCidr4(ev.subnet);
            if (this.peers.delete(k)) {
              removed.push(k);
              this.log.info(`peer ${k} removed`);
            }
            continue;
          }
          const p = this.peerFor(ev.lease);
          const k = formatCidr4(ev.lease.subnet);
          if (!p) {
            // A lease that changed to something we cannot use is gone for us.
            if (this.peers.delete(k)) removed.push(k);
            continue;
          }
          if (samePeer(this.peers.get(k), p)) continue; // a renewal
          this.peers.set(k, p);
          upserts.push(p);
          this.log.info(p, `peer ${k} via ${p.publicIp}`);
        }
        if (upserts.length || removed.length) this.engine!.updatePeers(upserts, removed);
      }
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.log.error({ err: (err as Error).message }, 'lease watch failed');
        void this.shutdown(1);
      }
    }
  }

  private async recreateLease(): Promise<boolean> {
    const subnet = this.lease!.subnet;
    try {
      const expiration = await this.store!.createLease(subnet, this.attrs!, this.leaseTtl);
      this.lease = { ...this.lease!, expiration };
      this.log.warn({ subnet: formatCidr4(subnet) }, `the store lost our lease; re-created ${formatCidr4(subnet)}`);
      clearTimeout(this.renewTimer);
      this.scheduleRenew();
      return true;
    } catch (err) {
      if (err instanceof SubnetTakenError) {
        this.log.error(`cannot re-create lease ${formatCidr4(subnet)}: another node holds it now`);
        return false;
      }
      // The store is still unsteady: renewal writes the key again shortly.
      this.log.warn({ err: (err as Error).message }, `cannot re-create lease ${formatCidr4(subnet)} yet, retrying`);
      clearTimeout(this.renewTimer);
      this.renewTimer = setTimeout(() => void this.renew(), 1000);
      return true;
    }
  }

  private revoked(): void {
    this.log.error('Lease has been revoked. Shutting down daemon.');
    void this.shutdown(1);
  }

  private scheduleRenew(): void {
    const exp = this.lease!.expiration;
    if (!exp) return; // a reservation does not expire
    // flannel renews at expiry minus the margin; a margin past half the TTL
    // (only with a short --lease-ttl) would renew in a loop, so cap it.
    const margin = Math.min(this.flags.subnetLeaseRenewMargin, this.leaseTtl / 120);
    this.renewTimer = setTimeout(() => void this.renew(), renewDelayMs(exp, margin));
  }

  private async renew(): Promise<void> {
    const subnet = this.lease!.subnet;
    try {
      const expiration = await this.store!.updateLease(subnet, this.attrs!, this.leaseTtl);
      this.lease = { ...this.lease!, expiration };
      this.log.info({ subnet: formatCidr4(subnet), expiration }, 'renewed lease');
      this.scheduleRenew();
    } catch (err) {
      // flannel retries each minute; a short --lease-ttl needs sooner.
      const retryMs = Math.min(60_000, this.leaseTtl * 250);
      this.log.warn({ err: (err as Error).message }, `lease renewal failed, retrying in ${retryMs / 1000} s`);
      this.renewTimer = setTimeout(() => void this.renew(), retryMs);
    }
  }

  status(): DaemonStatus {
    const e = this.engine!;
    return {
      backend: this.backend,
      network: formatCidr4(this.cfg!.Network),
      subnet: formatCidr4(this.lease!.subnet),
      publicIp: this.attrs!.PublicIP,
      vtepMac: e.vtepMac ?? null,
      tun: e.tunName,
      mtu: e.mtu,
      leaseExpiration: this.lease!.expiration?.toISOString() ?? null,
      ready: this.ready,
      peers: [...this.peers.values()],
      counters: e.stats().counters,
    };
  }

  private async serveStatus(): Promise<void> {
    const file = statusSocketPath(this.flags);
    rmSync(file, { force: true }); // a stale socket from a killed daemon
    this.statusServer = net.createServer((sock) => {
      sock.end(`${JSON.stringify(this.status())}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      this.statusServer!.once('error', reject);
      this.statusServer!.listen(file, () => resolve());
    });
  }

  private async serveHealthz(): Promise<void> {
    if (!this.flags.healthzPort) return;
    this.healthz = http.createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200).end('ok\n');
      } else if (req.url === '/readyz') {
        res.writeHead(this.ready ? 200 : 503).end(this.ready ? 'ok\n' : 'not ready\n');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.healthz!.once('error', (err) =>
        reject(new StartupError(`cannot serve healthz on ${this.flags.healthzIp}:${this.flags.healthzPort}: ${(err as Error).message}`)),
      );
      this.healthz!.listen(this.flags.healthzPort, this.flags.healthzIp, () => resolve());
    });
  }

  /** Stops everything this daemon made; the lease stays for the restart. */
  shutdown(code = 0): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      this.abort.abort();
      clearTimeout(this.renewTimer);
      clearInterval(this.engineCheck);
      this.engine?.close();
      this.healthz?.close();
      if (this.statusServer) {
        this.statusServer.close();
        rmSync(statusSocketPath(this.flags), { force: true });
      }
      await this.store?.close().catch(() => undefined);
      this.log.info({ code }, 'stopped');
      this.finish(code);
    })();
    return this.stopping;
  }
}

async function assertPortFree(address: string, port: number): Promise<void> {
  const probe = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind({ address, port, exclusive: true }, () => resolve());
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    const why = code === 'EADDRINUSE' ? 'is already in use' : 'cannot be bound';
    throw new StartupError(`UDP port ${port} on ${address} ${why} (${code})`);
  } finally {
    probe.close();
  }
}

function samePeer(a: Peer | undefined, b: Peer): boolean {
  return !!a && a.publicIp === b.publicIp && a.vtepMac === b.vtepMac;
}

