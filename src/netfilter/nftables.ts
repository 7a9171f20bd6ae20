// flannel's nftables traffic manager (pkg/trafficmngr/nftables), IPv4.
//
// flannel drives nft through knftables: each step is one transaction of nft
// commands fed to `nft -f -`, so it applies whole or not at all. A chain is
// added (a no-op when it is there) and flushed before its rules are added,
// so a second run, or a run with another subnet, leaves exactly the new
// rules: that is why there is no recycling of old rules and no resync here.
// The text below is what knftables writes for flannel's objects (base-chain
// priorities as numbers: srcnat = 100, filter = 0).
//
// flannel's Init makes both tables, ip flannel-ipv4 and ip6 flannel-ipv6,
// even on an IPv4-only node, so weft does too: `nft list ruleset` reads the
// same on both.
import { type Cidr4, formatCidr4 } from '../cidr';
import type { Logger } from '../log';
import { MissingBinaryError, mustRun, runCommand } from './exec';
import type { MasqOptions, PreflightOptions, TrafficManager } from './manager';

const TABLES = [
  { family: 'ip', name: 'flannel-ipv4' },
  { family: 'ip6', name: 'flannel-ipv6' },
] as const;
const V4 = 'ip flannel-ipv4';
const MASQ_TEST_CHAIN = 'masqueradeTest';

/** A comment clause, or nothing when the kernel takes no comments on tables and chains (knftables' fallback). */
function comment(text: string, comments: boolean): string {
  return comments ? ` comment ${JSON.stringify(text)} ;` : '';
}

export function addTableCommand(family: string, name: string, comments: boolean): string {
  return `add table ${family} ${name}${comments ? ` {${comment(`rules for ${name}`, true)} }` : ''}\n`;
}

/** flannel's postrtg chain and its masquerade rules (addMasqRules), in order. */
export function masqCommands(network: Cidr4, subnet: Cidr4, fullyRandom: boolean, comments: boolean): string {
  const cluster = formatCidr4(network);
  const pod = formatCidr4(subnet);
  const masquerade = fullyRandom ? 'masquerade fully-random' : 'masquerade';
  const rule = (r: string): string => `add rule ${V4} postrtg ${r}\n`;
  return (
    `add chain ${V4} postrtg { type nat hook postrouting priority 100 ;${comment('chain to manage traffic masquerading by flannel', comments)} }\n` +
    `flush chain ${V4} postrtg\n` +
    // kube-proxy's mark; flannel matches the bit without a mask here.
    rule('meta mark 0x4000 return') +
    rule(`ip saddr ${pod} ip daddr ${cluster} return`) +
    rule(`ip saddr ${cluster} ip daddr ${pod} return`) +
    // Not iptables' "! -s cluster -d pod": flannel's nft rule, kept as it is.
    rule(`ip saddr != ${pod} ip daddr ${cluster} return`) +
    rule(`ip saddr ${cluster} ip daddr != 224.0.0.0/4 ${masquerade}`) +
    rule(`ip saddr != ${cluster} ip daddr ${cluster} ${masquerade}`)
  );
}

/** flannel's forward chain and its two accept rules. */
export function forwardCommands(network: Cidr4, comments: boolean): string {
  const net = formatCidr4(network);
  return (
    `add chain ${V4} forward { type filter hook forward priority 0 ;${comment('chain to accept flannel traffic', comments)} }\n` +
    `flush chain ${V4} forward\n` +
    `add rule ${V4} forward ip saddr ${net} accept\n` +
    `add rule ${V4} forward ip daddr ${net} accept\n`
  );
}

/** flannel's checkRandomfully: a masqueradeTest chain, only ever --checked. */
function masqueradeTestCommands(comments: boolean): string {
  return (
    `add table ${V4}\n` +
    `add chain ${V4} ${MASQ_TEST_CHAIN} { type nat hook postrouting priority 100 ;${comment('chain to test if masquerade random fully is supported', comments)} }\n` +
    `flush chain ${V4} ${MASQ_TEST_CHAIN}\n` +
    `add rule ${V4} ${MASQ_TEST_CHAIN} ip saddr != 127.0.0.1 masquerade fully-random\n`
  );
}

/**
 * knftables refuses nft before 1.0.1 (its `nft -f` input needs later
 * syntax); flannel inherits that.
 */
export function checkNftVersion(versionText: string): void {
  if (versionText.startsWith('nftables v0.') || versionText.startsWith('nftables v1.0.0 ')) {
    throw new Error(`nft version must be v1.0.1 or later (got ${versionText.trim()})`);
  }
}

/**
 * Deletes flannel's nftables tables: flannel's clean-up when it runs in
 * iptables mode. Best effort, as flannel's: a table that is not there, or
 * no nft at all, is logged at debug level and passed over.
 */
export async function deleteFlannelTables(log: Logger): Promise<void> {
  for (const { family, name } of TABLES) {
    const label = family === 'ip' ? 'nftables' : 'nftables (ipv6)';
    try {
      const r = await runCommand('nft', ['delete', 'table', family, name]);
      if (r.code !== 0) log.debug(`${label}: couldn't delete table: ${r.stderr.trim().split('\n')[0]}`);
      else log.info(`${label}: deleted table ${family} ${name}`);
    } catch (err) {
      log.debug(`${label}: couldn't delete table: ${(err as Error).message}`);
    }
  }
}

export class NftablesManager implements TrafficManager {
  readonly mode = 'nftables';
  /** Whether the kernel takes comments on tables and chains (knftables checks once). */
  private comments?: Promise<boolean>;
  private randomFully?: Promise<boolean>;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    /** flannel's iptables clean-up, run by cleanupOther (the iptables manager's, passed in to keep the two files apart). */
    private readonly cleanupIptables: () => Promise<void>,
    /** Checks the iptables binaries cleanupIptables needs (flannel fails start-up without them, also in this mode). */
    private readonly checkIptables: () => Promise<void>,
  ) {}

  async preflight(o: PreflightOptions): Promise<void> {
    const comments = await this.probe();
    await this.checkIptables();
    const fullyRandom = o.masq && o.fullyRandom && (await this.supportsRandomFully());
    let tx = TABLES.map((t) => addTableCommand(t.family, t.name, comments)).join('');
    if (o.masq) tx += masqCommands(o.network, o.network, fullyRandom, comments);
    if (o.forward) tx += forwardCommands(o.network, comments);
    await this.nft(tx, true, "nft --check refused flannel's rules");
  }

  async cleanupOther(): Promise<void> {
    this.log.info('Cleaning-up unused traffic manager rules');
    this.log.info('Cleaning-up iptables rules...');
    await this.cleanupIptables();
  }

  init(): Promise<void> {
    return this.serial(async () => {
      this.log.info('Starting flannel in nftables mode...');
      const comments = await this.probe();
      for (const t of TABLES) await this.nft(addTableCommand(t.family, t.name, comments), false, `nftables: couldn't initialise table ${t.name}`);
    });
  }

  setupMasq(o: MasqOptions): Promise<void> {
    return this.serial(async () => {
      this.log.info('nftables: setting up masking rules (ipv4)');
      const comments = await this.probe();
      // flannel asks the kernel before every setup, even when the flag turns fully-random off.
      const supported = await this.supportsRandomFully();
      await this.nft(masqCommands(o.network, o.subnet, supported && o.fullyRandom, comments), false, "nftables: couldn't setup masq rules");
    });
  }

  setupForward(network: Cidr4): Promise<void> {
    return this.serial(async () => {
      this.log.info('Changing default FORWARD chain policy to ACCEPT');
      const comments = await this.probe();
      await this.nft(forwardCommands(network, comments), false, "nftables: couldn't setup forward rules");
    });
  }

  startResync(periodSeconds: number): () => void {
    if (!Number.isFinite(periodSeconds) || periodSeconds <= 0) throw new Error(`iptables resync period must be a positive number of seconds, got ${periodSeconds}`);
    return () => {};
  }

  async close(): Promise<void> {
    await this.queue.catch(() => {});
  }

  private supportsRandomFully(): Promise<boolean> {
    this.randomFully ??= (async () => {
      const comments = await this.probe();
      const r = await runCommand('nft', ['--check', '-f', '-'], masqueradeTestCommands(comments));
      if (r.code === 0) return true;
      this.log.warn('nftables: random fully unsupported');
      return false;
    })();
    return this.randomFully;
  }

  /** knftables.New: nft is there, new enough, and may change the ruleset; whether objects take comments. */
  private probe(): Promise<boolean> {
    this.comments ??= (async () => {
      let version: string;
      try {
        version = await mustRun('nft', ['--version']);
      } catch (err) {
        this.comments = undefined;
        if (err instanceof MissingBinaryError) throw new Error(`no nftables support: ${err.message}`);
        throw err;
      }
      checkNftVersion(version);
      let comments = true;
      for (const t of TABLES) {
        const withComment = await runCommand('nft', ['--check', '-f', '-'], `add table ${t.family} ${t.name} { comment "test" ; }\n`);
        if (withComment.code === 0) continue;
        const plain = await runCommand('nft', ['--check', '-f', '-'], `add table ${t.family} ${t.name}\n`);
        if (plain.code !== 0) throw new Error(`no nftables support: could not run nftables command: nft --check -f -: ${plain.stderr.trim()}`);
        comments = false;
      }
      return comments;
    })();
    return this.comments;
  }

  private async nft(commands: string, check: boolean, what: string): Promise<void> {
    const args = check ? ['--check', '-f', '-'] : ['-f', '-'];
    const r = await runCommand('nft', args, commands);
    if (r.code !== 0) throw new Error(`${what}: nft ${args.join(' ')}: ${r.stderr.trim()}`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
