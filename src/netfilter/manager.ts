// flannel's traffic manager (pkg/trafficmngr): the masquerade rules of
// --ip-masq and the forward rules of --iptables-forward-rules, through
// iptables or, with net-conf's EnableNFTables, through nftables. weft adds
// exactly flannel's rules, in flannel's order, with flannel's log lines.
//
// The one change of shape: flannel finds a missing binary or a rule the
// kernel refuses only when it first runs it, after the lease is taken and
// the device made. Here preflight() runs every check first and touches
// nothing (iptables-restore --test, nft --check), so the daemon can fail
// before it changes the node. The rest is flannel's sequence, one call per
// step of its main.go:
//
//   preflight -> cleanupOther -> init -> setupMasq (--ip-masq)
//     -> setupForward (--iptables-forward-rules) -> startResync -> ... -> close
//
// IPv4 only, as the rest of weft: flannel's ip6tables rules are not made.
import type { Cidr4 } from '../cidr';
import type { Logger } from '../log';
import { checkCleanupBinaries, IptablesManager, removeFlannelChains } from './iptables';
import { deleteFlannelTables, NftablesManager } from './nftables';

export interface PreflightOptions {
  /** The Network from net-conf; the rules are checked against it. */
  network: Cidr4;
  /** --ip-masq */
  masq: boolean;
  /** --iptables-forward-rules */
  forward: boolean;
  /** !--ip-masq-fully-random-disable: use fully-random masquerading where it is supported. */
  fullyRandom: boolean;
}

export interface MasqOptions {
  network: Cidr4;
  /** Our lease. */
  subnet: Cidr4;
  /**
   * FLANNEL_NETWORK and FLANNEL_SUBNET of the subnet.env found at start
   * (FLANNEL_SUBNET as its network: 10.244.1.1/24 -> 10.244.1.0/24); null
   * when there was none, which flannel reads as 0.0.0.0/0.
   */
  prevNetwork?: Cidr4 | null;
  prevSubnet?: Cidr4 | null;
  fullyRandom: boolean;
}

export interface TrafficManager {
  readonly mode: 'iptables' | 'nftables';
  /**
   * Checks, changing nothing, that what the later calls will run can run:
   * the binaries are there and work, the rules parse and the kernel takes
   * them, and whether fully-random masquerading is supported. Throws an
   * Error naming the binary or the rule and what was wrong.
   */
  preflight(opts: PreflightOptions): Promise<void>;
  /** flannel's start-up clean-up of the manager not in use (a node switched modes). */
  cleanupOther(): Promise<void>;
  /** flannel's Init: nftables makes its two tables; iptables only logs. */
  init(): Promise<void>;
  /** The masquerade rules, after removing the previous run's when its network or subnet differ. */
  setupMasq(opts: MasqOptions): Promise<void>;
  /** The forward ACCEPT rules for the Network. */
  setupForward(network: Cidr4): Promise<void>;
  /**
   * Every periodSeconds, puts back any rule that went missing (iptables; with
   * flannel's log line). nftables has no resync in flannel: a no-op there.
   * Returns the function that stops it.
   */
  startResync(periodSeconds: number): () => void;
  /** Stops the resync and waits for a running check. Rules stay, as flannel leaves them. */
  close(): Promise<void>;
}

export function createTrafficManager(opts: { nftables: boolean; log: Logger }): TrafficManager {
  const { log } = opts;
  return opts.nftables
    ? new NftablesManager(log, () => removeFlannelChains(log), checkCleanupBinaries)
    : new IptablesManager(log, () => deleteFlannelTables(log));
}
