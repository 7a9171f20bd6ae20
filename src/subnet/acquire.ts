// Lease acquisition, as flannel's etcd subnet manager does it
// (AcquireLease / tryAcquireLease / allocateSubnet), over any LeaseStore:
//   1. a lease already carrying our PublicIP, if it still fits the config,
//      is renewed and kept (a reservation stays a reservation);
//      one that no longer fits is deleted;
//   2. else the subnet named in subnet.env from our last run, if it fits
//      and nobody holds it;
//   3. else a random pick among the first 100 free subnets from SubnetMin.
// The store's create-if-absent is the only arbiter between nodes: losing
// that race means a fresh list and another try.
import { type Cidr4, cidrContains, formatCidr4, formatIp4, maskOf } from '../cidr';
import type { Logger } from '../log';
import { type Lease, type LeaseAttrs, type LeaseStore, SubnetTakenError } from '../store/types';
import type { NetConf } from '../config/netconf';

export type SubnetPool = Pick<NetConf, 'Network' | 'SubnetLen' | 'SubnetMin' | 'SubnetMax'>;

export interface AcquireOptions {
  /** The subnet from subnet.env, if any. */
  previousSubnet?: Cidr4 | null;
  /** flannel: 86400. */
  ttlSeconds: number;
  log: Logger;
  /** [0, 1); tests pass a seeded one. */
  random?: () => number;
  /** flannel's raceRetries. */
  maxAttempts?: number;
  /** A list the caller just read, for the first try (the store's create-if-absent still decides). */
  listed?: Lease[];
}

const MAX_CANDIDATES = 100;
const RACE_RETRIES = 10;

/** flannel's isSubnetConfigCompat: inside SubnetMin..SubnetMax with the configured length. */
export function isCompatible(cfg: SubnetPool, subnet: Cidr4): boolean {
  return subnet.ip >= cfg.SubnetMin && subnet.ip <= cfg.SubnetMax && subnet.prefixLen === cfg.SubnetLen;
}

function overlaps(a: Cidr4, b: Cidr4): boolean {
  const mask = maskOf(Math.min(a.prefixLen, b.prefixLen));
  return (a.ip & mask) === (b.ip & mask);
}

function heldBy(leases: Lease[], subnet: Cidr4): Lease | undefined {
  return leases.find((l) => overlaps(l.subnet, subnet));
}

/**
 * Free subnets from SubnetMin upwards, at most 100. "Free" means no lease
 * overlaps it (as flannel's Overlaps), so reservations and leases of another
 * length are never handed out. Unlike flannel, a key that is not inside the
 * Network at all (a written 0.0.0.0-0 would overlap everything) blocks
 * nothing: it is nobody's lease on this network, and no node could use it.
 * Leases of the configured length are looked up in a set, so the walk past
 * thousands of them stays linear.
 */
export function freeSubnets(cfg: SubnetPool, leases: Lease[], limit = MAX_CANDIDATES): Cidr4[] {
  const size = 2 ** (32 - cfg.SubnetLen);
  const taken = new Set<number>();
  const odd: Lease[] = [];
  for (const l of leases) {
    if (l.subnet.prefixLen < cfg.Network.prefixLen || !cidrContains(cfg.Network, l.subnet.ip)) continue;
    if (l.subnet.prefixLen === cfg.SubnetLen) taken.add(l.subnet.ip);
    else odd.push(l);
  }
  const out: Cidr4[] = [];
  for (let ip = cfg.SubnetMin; ip <= cfg.SubnetMax && out.length < limit; ip += size) {
    const sn = { ip, prefixLen: cfg.SubnetLen };
    if (!taken.has(ip) && !heldBy(odd, sn)) out.push(sn);
  }
  return out;
}

export async function acquireLease(store: LeaseStore, cfg: SubnetPool, attrs: LeaseAttrs, opts: AcquireOptions): Promise<Lease> {
  const attempts = opts.maxAttempts ?? RACE_RETRIES;
  for (let i = 1; i <= attempts; i++) {
    const lease = await tryAcquire(store, cfg, attrs, opts, i === 1 ? opts.listed : undefined);
    if (lease) return lease;
  }
  throw new Error('max retries reached trying to acquire a subnet'); // flannel's words
}

/** One pass; null when another node created our chosen subnet first. */
async function tryAcquire(store: LeaseStore, cfg: SubnetPool, attrs: LeaseAttrs, opts: AcquireOptions, listed?: Lease[]): Promise<Lease | null> {
  const { log } = opts;
  // Only whether our own lease is a reservation matters here, not when it lapses.
  let leases = listed ?? (await store.listLeases({ expirations: false })).leases;

  // 1. Our own lease. flannel looks at the first lease with our IP only; we
  // prefer any compatible one, so a stale one listed first cannot cost us ours.
  const ip = formatIp4(attrs.publicIp);
  const own = leases.filter((l) => l.publicIp === attrs.publicIp);
  const keep = own.find((l) => isCompatible(cfg, l.subnet));
  if (keep) {
    const s = formatCidr4(keep.subnet);
    log.info({ subnet: s, publicIp: ip }, `found lease ${s} for current IP ${ip}, reusing`);
    // A reservation (no expiration) is renewed without a TTL, so it stays one.
    const expiration = await store.updateLease(keep.subnet, attrs, keep.expiration === null ? 0 : opts.ttlSeconds);
    return { subnet: keep.subnet, ...attrs, expiration };
  }
  for (const l of own) {
    const s = formatCidr4(l.subnet);
    log.info({ subnet: s, publicIp: ip }, `found lease ${s} for current IP ${ip} but not compatible with current config, deleting`);
    await store.deleteLease(l.subnet);
  }
  leases = leases.filter((l) => !own.includes(l));

  // 2. Last run's subnet.
  let chosen: Cidr4 | null = null;
  const prev = opts.previousSubnet;
  if (prev) {
    const s = formatCidr4(prev);
    const holder = heldBy(leases, prev);
    if (!isCompatible(cfg, prev)) {
      log.warn({ subnet: s }, `previously leased subnet ${s} is not compatible with the network config, ignoring`);
    } else if (holder) {
      const by = formatIp4(holder.publicIp);
      log.info({ subnet: s, holder: by }, `previously leased subnet ${s} is now held by ${by}, picking another`);
    } else {
      log.info({ subnet: s }, `found previously leased subnet ${s}, reusing`);
      chosen = prev;
    }
  }

  // 3. A random free one.
  if (!chosen) {
    const free = freeSubnets(cfg, leases);
    if (free.length === 0) throw new Error('out of subnets');
    const random = opts.random ?? Math.random;
    chosen = free[Math.min(free.length - 1, Math.floor(random() * free.length))];
    log.info({ subnet: formatCidr4(chosen), candidates: free.length }, `picked subnet ${formatCidr4(chosen)} among ${free.length} free`);
  }

  try {
    const expiration = await store.createLease(chosen, attrs, opts.ttlSeconds);
    const s = formatCidr4(chosen);
    log.info({ subnet: s, publicIp: ip }, `allocated lease ${s} to current node ${ip}`);
    return { subnet: chosen, ...attrs, expiration };
  } catch (e) {
    if (!(e instanceof SubnetTakenError)) throw e;
    log.info({ subnet: formatCidr4(chosen) }, `subnet ${formatCidr4(chosen)} was taken by another node meanwhile, retrying`);
    return null;
  }
}

/** flannel renews at expiration minus the margin (--subnet-lease-renew-margin, minutes). */
export function renewDelayMs(expiration: Date, marginMinutes: number, now = Date.now()): number {
  return Math.max(0, expiration.getTime() - marginMinutes * 60_000 - now);
}
