// flannel's iptables traffic manager (pkg/trafficmngr/iptables), IPv4.
//
// flannel's mechanics, kept because they decide what iptables-save shows:
// - A chain is made by "clear": -N, or -F when it exists.
// - Rules go in through one `iptables-restore --noflush` transaction per
//   rule group; a rule already there is deleted in the same transaction and
//   appended again, so the group ends up whole and in order, and a rule some
//   other program put into POSTROUTING or FORWARD is never flushed.
// - Existence is asked rule by rule with -C (iptables matches it the way the
//   kernel holds it), never by comparing iptables-save text.
// - Resync checks every rule of a group; one missing re-bootstraps the group.
// Every call is serialized (one queue), as flannel serializes iptables-restore,
// so a resync never interleaves with a setup.
import { promises as fs } from 'node:fs';

import { type Cidr4, formatCidr4 } from '../cidr';
import type { Logger } from '../log';
import { commandLine, MissingBinaryError, mustRun, runCommand } from './exec';
import type { MasqOptions, PreflightOptions, TrafficManager } from './manager';

export type IptablesTable = 'nat' | 'filter';

export interface IptablesRule {
  table: IptablesTable;
  chain: string;
  spec: string[];
}

const POSTRTG = 'FLANNEL-POSTRTG';
const FWD = 'FLANNEL-FWD';
// trafficmngr.KubeProxyMark: what kube-proxy marked for its own masquerade.
const KUBE_PROXY_MARK = '0x4000/0x4000';
const MULTICAST = '224.0.0.0/4';
const ZERO: Cidr4 = { ip: 0, prefixLen: 0 };
const BR_NETFILTER = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/** flannel's masqRules, in its order. */
export function masqRules(network: Cidr4, subnet: Cidr4, fullyRandom: boolean): IptablesRule[] {
  const cluster = formatCidr4(network);
  const pod = formatCidr4(subnet);
  const comment = ['-m', 'comment', '--comment', 'flanneld masq'];
  const masquerade = fullyRandom ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
  const rule = (chain: string, ...spec: string[]): IptablesRule => ({ table: 'nat', chain, spec });
  return [
    rule('POSTROUTING', ...comment, '-j', POSTRTG),
    rule(POSTRTG, '-m', 'mark', '--mark', KUBE_PROXY_MARK, ...comment, '-j', 'RETURN'),
    rule(POSTRTG, '-s', pod, '-d', cluster, ...comment, '-j', 'RETURN'),
    rule(POSTRTG, '-s', cluster, '-d', pod, ...comment, '-j', 'RETURN'),
    rule(POSTRTG, '!', '-s', cluster, '-d', pod, ...comment, '-j', 'RETURN'),
    rule(POSTRTG, '-s', cluster, '!', '-d', MULTICAST, ...comment, ...masquerade),
    rule(POSTRTG, '!', '-s', cluster, '-d', cluster, ...comment, ...masquerade),
  ];
}

/** flannel's forwardRules. */
export function forwardRules(network: Cidr4): IptablesRule[] {
  const net = formatCidr4(network);
  const comment = ['-m', 'comment', '--comment', 'flanneld forward'];
  return [
    { table: 'filter', chain: 'FORWARD', spec: [...comment, '-j', FWD] },
    { table: 'filter', chain: FWD, spec: ['-s', net, ...comment, '-j', 'ACCEPT'] },
    { table: 'filter', chain: FWD, spec: ['-d', net, ...comment, '-j', 'ACCEPT'] },
  ];
}

/** The flannel chain a rule lives in or jumps to, if any. */
function flannelChainOf(rule: IptablesRule): string | undefined {
  const target = rule.spec[rule.spec.length - 1];
  for (const chain of [POSTRTG, FWD]) if (rule.chain === chain || target === chain) return chain;
  return undefined;
}

/** One iptables-restore line; the comment is quoted, as restore reads words. */
export function restoreLine(action: '-A' | '-D', rule: IptablesRule): string {
  const words = [action, rule.chain, ...rule.spec];
  return words.map((w, i) => (i > 0 && words[i - 1] === '--comment' ? `"${w}"` : w)).join(' ');
}

/** Table blocks for iptables-restore; `chains` are declared (":X - [0:0]") first. */
export function restorePayload(lines: Map<IptablesTable, string[]>, chains = new Map<IptablesTable, string[]>()): string {
  let out = '';
  for (const [table, tableLines] of lines) {
    out += `*${table}\n`;
    for (const c of chains.get(table) ?? []) out += `:${c} - [0:0]\n`;
    for (const l of tableLines) out += `${l}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

export interface IptablesVersion {
  major: number;
  minor: number;
  patch: number;
  /** "nf_tables" or "legacy" (no mode printed means legacy). */
  mode: string;
}

export function parseIptablesVersion(text: string): IptablesVersion {
  const m = /v(\d+)\.(\d+)\.(\d+)(?:\s+\((\w+))?/.exec(text);
  if (!m) throw new Error(`no iptables version found in ${JSON.stringify(text.trim())}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), mode: m[4] ?? 'legacy' };
}

function atLeast(v: IptablesVersion, major: number, minor: number, patch: number): boolean {
  return v.major !== major ? v.major > major : v.minor !== minor ? v.minor > minor : v.patch >= patch;
}

/** What flannel (go-iptables) derives from the version: --random-fully and iptables-restore --wait came in 1.6.2. */
export function iptablesFeatures(v: IptablesVersion): { randomFully: boolean; restoreWait: boolean } {
  const since162 = atLeast(v, 1, 6, 2);
  return { randomFully: since162, restoreWait: since162 };
}

interface Probe {
  version: IptablesVersion;
  randomFully: boolean;
  restoreWait: boolean;
}

const CLEANUP_BINARIES = [
  { bin: 'iptables', label: 'IPv4' },
  { bin: 'ip6tables', label: 'IPv6' },
] as const;
const FLANNEL_CHAINS = [
  { table: 'nat', chain: POSTRTG, from: 'POSTROUTING', comment: 'flanneld masq' },
  { table: 'filter', chain: FWD, from: 'FORWARD', comment: 'flanneld forward' },
] as const;

/**
 * A question iptables answers with its exit status (-C, -S chain 1): 0 yes,
 * 1 no; anything else is an error.
 */
async function ask(bin: string, args: string[]): Promise<boolean> {
  const full = [...args, '--wait'];
  const r = await runCommand(bin, full);
  if (r.code === 0 || r.code === 1) return r.code === 0;
  throw new Error(`failed to check rule existence: ${commandLine(bin, full)} (exit ${r.code}): ${r.stderr.trim()}`);
}

function missingForCleanup(err: unknown): unknown {
  if (!(err instanceof MissingBinaryError)) return err;
  return new Error(`failed to setup IPTables. ${err.message} (flannel removes its iptables rules at start-up also with EnableNFTables)`);
}

/** The binaries removeFlannelChains runs: flannel's start-up in nftables mode fails without them. */
export async function checkCleanupBinaries(): Promise<void> {
  for (const { bin } of CLEANUP_BINARIES) {
    try {
      await mustRun(bin, ['--version']);
    } catch (err) {
      throw missingForCleanup(err);
    }
  }
}

/**
 * flannel's clean-up of its iptables rules when it runs in nftables mode,
 * for IPv4 and IPv6, with one fix: flannel flushes and deletes
 * nat/FLANNEL-POSTRTG and nat/FLANNEL-FWD, so the delete fails on the jump
 * from POSTROUTING that still points at the chain, and FLANNEL-FWD (which
 * lives in filter) keeps its ACCEPT rules. Here the jump rules go first and
 * FLANNEL-FWD is looked for in filter, so no flannel rule is left in
 * iptables. A chain that still cannot go (another program jumps to it) is
 * logged at debug level, as flannel logs its failures.
 */
export async function removeFlannelChains(log: Logger): Promise<void> {
  for (const { bin, label } of CLEANUP_BINARIES) {
    const yes = (args: string[]): Promise<boolean> => ask(bin, args);
    for (const { table, chain, from, comment } of FLANNEL_CHAINS) {
      try {
        if (!(await yes(['-t', table, '-S', chain, '1']))) continue;
        const jump = [from, '-m', 'comment', '--comment', comment, '-j', chain];
        // Bounded: a crash loop of another tool could have left many copies.
        for (let i = 0; i < 100 && (await yes(['-t', table, '-C', ...jump])); i++) await mustRun(bin, ['-t', table, '-D', ...jump, '--wait']);
        await mustRun(bin, ['-t', table, '-F', chain, '--wait']);
        await mustRun(bin, ['-t', table, '-X', chain, '--wait']);
        log.info(`removed iptables chain ${chain} from table ${table} (${label})`);
      } catch (err) {
        if (err instanceof MissingBinaryError) throw missingForCleanup(err);
        log.debug(`could not clean-up ${chain} (${label}): ${(err as Error).message}`);
      }
    }
  }
}

export class IptablesManager implements TrafficManager {
  readonly mode = 'iptables';
  private probed?: Promise<Probe>;
  private queue: Promise<unknown> = Promise.resolve();
  /** The rule groups set up so far, by name: what resync keeps in place. */
  private readonly groups = new Map<'masq' | 'forward', IptablesRule[]>();
  private stopResync?: () => void;

  constructor(
    private readonly log: Logger,
    /** flannel's nftables clean-up, run by cleanupOther (the nftables manager's, passed in to keep the two files apart). */
    private readonly cleanupNftables: () => Promise<void>,
  ) {}

  async preflight(o: PreflightOptions): Promise<void> {
    // flannel checks this in iptables mode whatever the flags: without
    // br_netfilter, traffic between pods on one bridge never meets iptables
    // (nor kube-proxy's Service rules).
    try {
      await fs.stat(BR_NETFILTER);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(
        `Failed to check br_netfilter: stat ${BR_NETFILTER}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}` +
          ' (load the br_netfilter kernel module, or set EnableNFTables in net-conf.json)',
      );
    }
    if (!o.masq && !o.forward) return;
    const p = await this.probe();
    const rules = [
      ...(o.masq ? masqRules(o.network, o.network, o.fullyRandom && p.randomFully) : []),
      ...(o.forward ? forwardRules(o.network) : []),
    ];
    const lines = new Map<IptablesTable, string[]>();
    const chains = new Map<IptablesTable, string[]>();
    for (const r of rules) {
      lines.set(r.table, [...(lines.get(r.table) ?? []), restoreLine('-A', r)]);
      const own = flannelChainOf(r);
      if (own && !(chains.get(r.table) ?? []).includes(own)) chains.set(r.table, [...(chains.get(r.table) ?? []), own]);
    }
    // --test parses every rule and loads its matches and targets, and commits nothing.
    const payload = restorePayload(lines, chains);
    const r = await runCommand('iptables-restore', this.restoreArgs(p, ['--test']), payload);
    if (r.code !== 0) throw new Error(`iptables-restore --test refused flannel's rules: ${restoreFailure(payload, r.stderr)}`);
  }

  async cleanupOther(): Promise<void> {
    this.log.info('Cleaning-up unused traffic manager rules');
    this.log.info('Cleaning-up nftables rules...');
    await this.cleanupNftables();
  }

  async init(): Promise<void> {
    this.log.info('Starting flannel in iptables mode...');
  }

  setupMasq(o: MasqOptions): Promise<void> {
    return this.serial(async () => {
      const p = await this.probe();
      const fullyRandom = o.fullyRandom && p.randomFully;
      const prevNetwork = o.prevNetwork ?? ZERO;
      const prevSubnet = o.prevSubnet ?? ZERO;
      // flannel compares with 0.0.0.0/0 when there was no subnet.env, so a
      // first start also "recycles": it removes the two network-independent
      // rules, which the bootstrap below puts back.
      if (!sameCidr(o.network, prevNetwork) || !sameCidr(prevSubnet, o.subnet)) {
        this.log.info(
          `Current network or subnet (${formatCidr4(o.network)}, ${formatCidr4(o.subnet)}) is not equal to previous one ` +
            `(${formatCidr4(prevNetwork)}, ${formatCidr4(prevSubnet)}), trying to recycle old iptables rules`,
        );
        await this.teardown(masqRules(prevNetwork, prevSubnet, fullyRandom));
      }
      this.log.info('Setting up masking rules');
      await this.clearChain('nat', POSTRTG);
      const rules = masqRules(o.network, o.subnet, fullyRandom);
      await this.bootstrap(rules);
      this.groups.set('masq', rules);
    });
  }

  setupForward(network: Cidr4): Promise<void> {
    return this.serial(async () => {
      this.log.info('Changing default FORWARD chain policy to ACCEPT');
      await this.clearChain('filter', FWD);
      const rules = forwardRules(network);
      await this.bootstrap(rules);
      this.groups.set('forward', rules);
    });
  }

  startResync(periodSeconds: number): () => void {
    if (!Number.isFinite(periodSeconds) || periodSeconds <= 0) throw new Error(`iptables resync period must be a positive number of seconds, got ${periodSeconds}`);
    this.stopResync?.();
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const tick = (): void => {
      timer = setTimeout(() => {
        void this.serial(() => this.ensureAll()).finally(() => {
          if (!stopped) tick();
        });
      }, periodSeconds * 1000);
      // The resync never keeps a process alive on its own.
      timer.unref();
    };
    tick();
    const stop = (): void => {
      stopped = true;
      clearTimeout(timer);
    };
    this.stopResync = stop;
    return stop;
  }

  async close(): Promise<void> {
    this.stopResync?.();
    await this.queue.catch(() => {});
  }

  // ---- flannel's ensure / bootstrap / teardown ----------------------------

  private async ensureAll(): Promise<void> {
    for (const rules of this.groups.values()) {
      try {
        if (await this.rulesExist(rules)) continue;
        // Order matters, so the whole group is put back, not just the missing rule.
        this.log.info('Some iptables rules are missing; deleting and recreating rules');
        await this.bootstrap(rules);
      } catch (err) {
        this.log.error(`Failed to ensure iptables rules: ${(err as Error).message}`);
      }
    }
  }

  private async rulesExist(rules: IptablesRule[]): Promise<boolean> {
    for (const rule of rules) {
      const own = flannelChainOf(rule);
      if (own && !(await this.chainExists(rule.table, own))) return false;
      if (!(await this.ruleExists(rule))) return false;
    }
    return true;
  }

  private async bootstrap(rules: IptablesRule[]): Promise<void> {
    const lines = new Map<IptablesTable, string[]>();
    const add = (table: IptablesTable, line: string): void => void lines.set(table, [...(lines.get(table) ?? []), line]);
    for (const rule of rules) {
      const own = flannelChainOf(rule);
      if (own && !(await this.chainExists(rule.table, own))) await this.clearChain(rule.table, own);
      if (await this.ruleExists(rule)) add(rule.table, restoreLine('-D', rule));
      add(rule.table, restoreLine('-A', rule));
    }
    await this.restore(lines);
    this.log.info('bootstrap done');
  }

  private async teardown(rules: IptablesRule[]): Promise<void> {
    const lines = new Map<IptablesTable, string[]>();
    for (const rule of rules) {
      const own = flannelChainOf(rule);
      if (own && !(await this.chainExists(rule.table, own))) continue;
      if (await this.ruleExists(rule)) lines.set(rule.table, [...(lines.get(rule.table) ?? []), restoreLine('-D', rule)]);
    }
    if (lines.size > 0) await this.restore(lines);
  }

  // ---- single commands ----------------------------------------------------

  private async restore(lines: Map<IptablesTable, string[]>): Promise<void> {
    const p = await this.probe();
    const payload = restorePayload(lines);
    this.log.trace({ payload }, 'trying to run iptables-restore');
    const r = await runCommand('iptables-restore', this.restoreArgs(p, []), payload);
    if (r.code !== 0) throw new Error(`failed to apply partial iptables-restore: ${restoreFailure(payload, r.stderr)}`);
  }

  private restoreArgs(p: Probe, extra: string[]): string[] {
    return [...extra, '--noflush', ...(p.restoreWait ? ['--wait'] : [])];
  }

  /** ClearChain: make the chain, or flush it when it is there. */
  private async clearChain(table: IptablesTable, chain: string): Promise<void> {
    const made = await runCommand('iptables', ['-t', table, '-N', chain, '--wait']);
    if (made.code === 0) return;
    if (made.code !== 1) throw new Error(`failed to create chain ${chain} in table ${table}: ${made.stderr.trim()}`);
    await mustRun('iptables', ['-t', table, '-F', chain, '--wait']);
  }

  private chainExists(table: IptablesTable, chain: string): Promise<boolean> {
    // -S with a rule number lists at most one rule: cheap however long the chain.
    return ask('iptables', ['-t', table, '-S', chain, '1']);
  }

  private ruleExists(rule: IptablesRule): Promise<boolean> {
    return ask('iptables', ['-t', rule.table, '-C', rule.chain, ...rule.spec]);
  }

  private probe(): Promise<Probe> {
    this.probed ??= (async () => {
      let versionText: string;
      try {
        versionText = await mustRun('iptables', ['--version']);
      } catch (err) {
        this.probed = undefined; // a binary installed later is found on the next try
        if (err instanceof MissingBinaryError) throw new Error(`failed to setup IPTables. ${err.message}`);
        throw err;
      }
      const version = parseIptablesVersion(versionText);
      // -C (1.4.11) and --wait (1.4.20) are what every check here relies on.
      if (!atLeast(version, 1, 4, 20)) {
        throw new Error(`iptables v${version.major}.${version.minor}.${version.patch} is too old: weft needs 1.4.20 or later (-C and --wait)`);
      }
      try {
        await mustRun('iptables-restore', ['--version']);
      } catch (err) {
        this.probed = undefined;
        if (err instanceof MissingBinaryError) throw new Error(`failed to setup IPTables. ${err.message}`);
        throw err;
      }
      const probe = { version, ...iptablesFeatures(version) };
      this.log.debug({ iptables: `${version.major}.${version.minor}.${version.patch}`, mode: version.mode, randomFully: probe.randomFully }, 'iptables found');
      return probe;
    })();
    return this.probed;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}

function sameCidr(a: Cidr4, b: Cidr4): boolean {
  return a.ip >>> 0 === b.ip >>> 0 && a.prefixLen === b.prefixLen;
}

/** iptables-restore's stderr with the payload line it names ("Error occurred at line: 4"). */
function restoreFailure(payload: string, stderr: string): string {
  const text = stderr.trim().split('\n').filter((l) => !l.startsWith('Try `')).join('; ');
  const m = /Error occurred at line: (\d+)/.exec(stderr);
  const line = m ? payload.split('\n')[Number(m[1]) - 1] : undefined;
  return line ? `${text} (rule: ${line})` : text;
}
