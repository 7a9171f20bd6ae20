// flannel's masquerade and forward rules (src/netfilter), with Debian's real
// iptables (the nf_tables variant) and nft, each run in namespaces of the
// test's own. The manager runs in a process inside the namespace
// (lab/netfilter-process.ts), calling what the daemon calls in its order.
//
// Rule tests use one bare namespace each. The behaviour tests use:
//
//   <p>-p1 10.244.1.2        <p>-p2 10.244.2.2         (pods, behind cni0)
//      |                        |
//   node1 (rules under test) node2 (rules under test)
//   10.244.2.0/24 via .2     10.244.1.0/24 via .1      (host-gw style routes, no weft)
//   eth0 192.168.77.1        eth0 192.168.77.2
//      |                        |
//   +--+------------------------+--+---- out 192.168.77.100 (outside the Network;
//   |        <p>-u: bridge br0      |       it has no route to the pods)
//   +-------------------------------+
//
// Addresses are read on the receiving side: a UDP listener (lab/udp-peer)
// prints each datagram's source.
//
// Debian 12's iptables is iptables-nft: its rules are nftables tables too
// (ip nat, ip filter), so in iptables mode `nft list ruleset` shows them; the
// checks there are only that no flannel-ipv4/flannel-ipv6 table exists.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, before, describe, it } from 'node:test';

import { type NetfilterPlan, NetfilterProcess } from '../../lab/netfilter-process';
import { deleteNamespaces, Netns, runPrefix } from '../../lab/netns';
import { Lab } from '../../lab/topology';
import { until } from '../../lab/wait';

const PREFIX = runPrefix('wnf');
let tmp: string;
before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`))));
after(() => {
  deleteNamespaces(PREFIX);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const UDP_PEER = path.resolve(__dirname, '..', '..', 'lab', 'udp-peer.js');
const NETWORK = '10.244.0.0/16';

let nsCount = 0;
function freshNs(): Netns {
  return Netns.create(`${PREFIX}-x${++nsCount}`);
}

function plan(over: Partial<NetfilterPlan> = {}): NetfilterPlan {
  return { nftables: false, network: NETWORK, subnet: '10.244.1.0/24', masq: true, forward: true, fullyRandom: true, ...over };
}

async function mustApply(ns: Netns, p: NetfilterPlan): Promise<string[]> {
  const r = await NetfilterProcess.run(ns, p);
  assert.equal(r.code, 0, `traffic manager failed: ${r.error}`);
  return r.messages;
}

/** The rule lines of one iptables table, as iptables-save prints them (user chains and rules only). */
function saved(ns: Netns, table: 'nat' | 'filter'): string[] {
  return ns
    .exec('iptables-save', ['-t', table])
    .split('\n')
    .filter((l) => l.startsWith('-A ') || (l.startsWith(':') && !/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING|FORWARD) /.test(l)));
}

// flannel's rules (pkg/trafficmngr/iptables masqRules / forwardRules), as iptables-save prints them.
function flannelNat(subnet: string, masq = 'MASQUERADE --random-fully'): string[] {
  const c = '-m comment --comment "flanneld masq"';
  return [
    ':FLANNEL-POSTRTG - [0:0]',
    `-A POSTROUTING ${c} -j FLANNEL-POSTRTG`,
    `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${subnet} -d ${NETWORK} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${NETWORK} -d ${subnet} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${subnet} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${NETWORK} ! -d 224.0.0.0/4 ${c} -j ${masq}`,
    `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${NETWORK} ${c} -j ${masq}`,
  ];
}
const FLANNEL_FILTER = [
  ':FLANNEL-FWD - [0:0]',
  '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
  `-A FLANNEL-FWD -s ${NETWORK} -m comment --comment "flanneld forward" -j ACCEPT`,
  `-A FLANNEL-FWD -d ${NETWORK} -m comment --comment "flanneld forward" -j ACCEPT`,
];

// flannel's nftables objects (pkg/trafficmngr/nftables), as `nft list ruleset` prints them.
function flannelNft(subnet: string, masq = 'masquerade fully-random'): string {
  return `table ip flannel-ipv4 {
\tcomment "rules for flannel-ipv4"
\tchain postrtg {
\t\tcomment "chain to manage traffic masquerading by flannel"
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark 0x00004000 return
\t\tip saddr ${subnet} ip daddr ${NETWORK} return
\t\tip saddr ${NETWORK} ip daddr ${subnet} return
\t\tip saddr != ${subnet} ip daddr ${NETWORK} return
\t\tip saddr ${NETWORK} ip daddr != 224.0.0.0/4 ${masq}
\t\tip saddr != ${NETWORK} ip daddr ${NETWORK} ${masq}
\t}

\tchain forward {
\t\tcomment "chain to accept flannel traffic"
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr ${NETWORK} accept
\t\tip daddr ${NETWORK} accept
\t}
}
table ip6 flannel-ipv6 {
\tcomment "rules for flannel-ipv6"
}
`;
}

const MISSING_LINE = 'Some iptables rules are missing; deleting and recreating rules';

describe('iptables mode (--ip-masq, --iptables-forward-rules)', () => {
  it("iptables-save shows exactly flannel's rules, in flannel's order, with flannel's log lines; a second run changes nothing", async () => {
    const ns = freshNs();
    try {
      const messages = await mustApply(ns, plan());
      assert.deepEqual(saved(ns, 'nat'), flannelNat('10.244.1.0/24'));
      assert.deepEqual(saved(ns, 'filter'), FLANNEL_FILTER);
      assert.doesNotMatch(ns.exec('nft', ['list', 'ruleset']), /flannel-ipv/, 'no flannel nftables table in iptables mode');
      const info = messages.filter((m) => !m.startsWith('nftables') && m !== 'iptables found');
      assert.deepEqual(info, [
        'Cleaning-up unused traffic manager rules',
        'Cleaning-up nftables rules...',
        'Starting flannel in iptables mode...',
        // flannel reads a missing subnet.env as 0.0.0.0/0, so a first start "recycles" too.
        'Current network or subnet (10.244.0.0/16, 10.244.1.0/24) is not equal to previous one (0.0.0.0/0, 0.0.0.0/0), trying to recycle old iptables rules',
        'Setting up masking rules',
        'bootstrap done',
        'Changing default FORWARD chain policy to ACCEPT',
        'bootstrap done',
      ]);

      // A restart with the same network and subnet (subnet.env says so): same rules, no duplicates, no recycling.
      const again = await mustApply(ns, plan({ prevNetwork: NETWORK, prevSubnet: '10.244.1.0/24' }));
      assert.deepEqual(saved(ns, 'nat'), flannelNat('10.244.1.0/24'));
      assert.deepEqual(saved(ns, 'filter'), FLANNEL_FILTER);
      assert.ok(!again.some((m) => m.includes('trying to recycle')), 'nothing to recycle');

      // --ip-masq-fully-random-disable: plain MASQUERADE.
      await mustApply(ns, plan({ fullyRandom: false, prevNetwork: NETWORK, prevSubnet: '10.244.1.0/24' }));
      assert.deepEqual(saved(ns, 'nat'), flannelNat('10.244.1.0/24', 'MASQUERADE'));

      // Without --ip-masq and --iptables-forward-rules=false nothing is added (the old rules stay, as in flannel).
      const bare = freshNs();
      try {
        await mustApply(bare, plan({ masq: false, forward: false }));
        assert.equal(bare.exec('iptables-save', []), '', 'no iptables table at all');
      } finally {
        bare.delete();
      }
    } finally {
      ns.delete();
    }
  });

  it("removes the previous run's rules when subnet.env's network or subnet differ, and keeps other programs' rules", async () => {
    const ns = freshNs();
    try {
      await mustApply(ns, plan());
      // Someone else's rules in the same built-in chains.
      ns.exec('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', '172.17.0.0/16', '-j', 'MASQUERADE']);
      ns.exec('iptables', ['-A', 'FORWARD', '-s', '172.17.0.0/16', '-j', 'ACCEPT']);
      const messages = await mustApply(ns, plan({ subnet: '10.244.5.0/24', prevNetwork: NETWORK, prevSubnet: '10.244.1.0/24' }));
      assert.ok(
        messages.includes(
          'Current network or subnet (10.244.0.0/16, 10.244.5.0/24) is not equal to previous one (10.244.0.0/16, 10.244.1.0/24), trying to recycle old iptables rules',
        ),
        messages.join('\n'),
      );
      const nat = saved(ns, 'nat');
      assert.doesNotMatch(nat.join('\n'), /10\.244\.1\.0/, 'no rule of the old subnet left');
      // The other program's rule stays; flannel's jump is re-appended after it, as iptables-restore puts it.
      const [chain, ...rules] = flannelNat('10.244.5.0/24');
      assert.deepEqual(nat, [chain, '-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE', ...rules]);
      assert.deepEqual(saved(ns, 'filter'), [FLANNEL_FILTER[0], '-A FORWARD -s 172.17.0.0/16 -j ACCEPT', ...FLANNEL_FILTER.slice(1)]);
    } finally {
      ns.delete();
    }
  });

  it('puts a deleted rule back within the resync period, with flannel\'s log line', async () => {
    const ns = freshNs();
    try {
      const tm = await NetfilterProcess.start(ns, plan({ resyncSeconds: 1 }));
      try {
        // A masquerade rule from the middle of the chain, and the forward jump.
        ns.exec('iptables', ['-t', 'nat', '-D', 'FLANNEL-POSTRTG', '-s', '10.244.1.0/24', '-d', NETWORK, '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN']);
        ns.exec('iptables', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
        assert.equal(saved(ns, 'nat').length, flannelNat('10.244.1.0/24').length - 1, 'the rule is gone');
        const t0 = Date.now();
        await until('rules back', 3000, async () =>
          JSON.stringify(saved(ns, 'nat')) === JSON.stringify(flannelNat('10.244.1.0/24')) &&
          JSON.stringify(saved(ns, 'filter')) === JSON.stringify(FLANNEL_FILTER),
        );
        const took = Date.now() - t0;
        assert.ok(took < 2500, `back after ${took} ms with a 1 s resync`);
        await until('both log lines', 2000, async () => tm.messages().filter((m) => m === MISSING_LINE).length === 2);

        // A whole chain deleted (someone ran iptables -F; -X): back too.
        ns.exec('iptables', ['-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
        ns.exec('iptables', ['-t', 'nat', '-F', 'FLANNEL-POSTRTG']);
        ns.exec('iptables', ['-t', 'nat', '-X', 'FLANNEL-POSTRTG']);
        await until('chain back', 3000, async () => JSON.stringify(saved(ns, 'nat')) === JSON.stringify(flannelNat('10.244.1.0/24')));
      } finally {
        assert.equal(await tm.stop(), 0);
      }
      assert.ok(!tm.messages().some((m) => m.startsWith('Failed')), tm.messages().join('\n'));
    } finally {
      ns.delete();
    }
  });
});

describe('nftables mode (EnableNFTables)', () => {
  it("nft list ruleset shows exactly flannel's tables and rules; no iptables rules", async () => {
    const ns = freshNs();
    try {
      const messages = await mustApply(ns, plan({ nftables: true }));
      assert.equal(ns.exec('nft', ['list', 'ruleset']), flannelNft('10.244.1.0/24'));
      assert.equal(ns.exec('iptables-save', []), '', 'no iptables table at all');
      assert.deepEqual(
        messages.filter((m) => !m.startsWith('could not clean-up')),
        [
          'Cleaning-up unused traffic manager rules',
          'Cleaning-up iptables rules...',
          'Starting flannel in nftables mode...',
          'nftables: setting up masking rules (ipv4)',
          'Changing default FORWARD chain policy to ACCEPT',
        ],
      );

      // Another subnet (the chains are flushed first: only the new rules), and fully-random disabled.
      await mustApply(ns, plan({ nftables: true, subnet: '10.244.5.0/24', fullyRandom: false }));
      assert.equal(ns.exec('nft', ['list', 'ruleset']), flannelNft('10.244.5.0/24', 'masquerade'));
    } finally {
      ns.delete();
    }
  });

  it('switching modes removes the other mode\'s rules: iptables -> nftables -> iptables', async () => {
    const ns = freshNs();
    try {
      await mustApply(ns, plan());
      assert.equal(saved(ns, 'nat').length, 8);
      await mustApply(ns, plan({ nftables: true }));
      // flannel's own clean-up would leave FLANNEL-FWD's rules and the POSTROUTING jump; weft leaves none.
      assert.doesNotMatch(ns.exec('iptables-save', []), /FLANNEL|flanneld/);
      assert.match(ns.exec('nft', ['list', 'ruleset']), /table ip flannel-ipv4/);
      await mustApply(ns, plan());
      assert.doesNotMatch(ns.exec('nft', ['list', 'ruleset']), /flannel-ipv/, 'nft tables deleted');
      assert.deepEqual(saved(ns, 'nat'), flannelNat('10.244.1.0/24'));
      assert.deepEqual(saved(ns, 'filter'), FLANNEL_FILTER);
    } finally {
      ns.delete();
    }
  });
});

describe('start-up errors', () => {
  /** A PATH directory holding only the named binaries (links to Debian's). */
  function pathWith(name: string, bins: string[]): string {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    for (const b of bins) fs.symlinkSync(`/usr/sbin/${b}`, path.join(dir, b));
    return dir;
  }

  it('a missing binary is an error naming it, before anything is touched', async () => {
    const ns = freshNs();
    try {
      const onlyNft = pathWith('only-nft', ['nft']);
      const noNft = pathWith('no-nft', ['iptables', 'iptables-restore', 'iptables-save', 'ip6tables']);
      const noRestore = pathWith('no-restore', ['iptables', 'ip6tables', 'nft']);
      const noIp6tables = pathWith('no-ip6tables', ['iptables', 'iptables-restore', 'nft']);
      const cases: Array<[NetfilterPlan, string, RegExp]> = [
        [plan(), onlyNft, /^failed to setup IPTables\. iptables binary was not found: "iptables" is not in PATH \(.*only-nft\)$/],
        [plan(), noRestore, /^failed to setup IPTables\. iptables-restore binary was not found: "iptables-restore" is not in PATH/],
        [plan({ nftables: true }), noNft, /^no nftables support: nft binary was not found: "nft" is not in PATH/],
        // flannel removes its iptables rules at start-up in nftables mode too, and fails without iptables.
        [plan({ nftables: true }), onlyNft, /^failed to setup IPTables\. iptables binary was not found: .*also with EnableNFTables/],
        [plan({ nftables: true }), noIp6tables, /^failed to setup IPTables\. ip6tables binary was not found/],
      ];
      for (const [p, dir, message] of cases) {
        const r = await NetfilterProcess.run(ns, p, dir);
        assert.equal(r.code, 1, `${path.basename(dir)}: exit status`);
        assert.match(r.error ?? '', message);
        assert.equal(ns.exec('nft', ['list', 'ruleset']), '', `${path.basename(dir)}: nothing touched`);
      }
      // iptables mode needs no nft: the nft clean-up is best effort, as flannel's.
      const r = await NetfilterProcess.run(ns, plan(), noNft);
      assert.equal(r.code, 0, r.error);
      assert.deepEqual(saved(ns, 'nat'), flannelNat('10.244.1.0/24'));
    } finally {
      ns.delete();
    }
  });
});

/** Sends UDP from `from` to toIp and resolves with the source address `to` saw, or null when nothing arrived. */
async function sourceSeen(from: Netns, to: Netns, toIp: string): Promise<string | null> {
  const port = 9_000 + Math.floor(Math.random() * 1000);
  const listener = to.spawn(process.execPath, [UDP_PEER, '0.0.0.0', String(port)]);
  const lines = readline.createInterface({ input: listener.stdout! });
  try {
    const seen = new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 3000);
      lines.on('line', (l) => {
        const m = JSON.parse(l) as { bound?: boolean; from?: string };
        if (m.bound) {
          // Five datagrams, 100 ms apart: one lost to a neighbour lookup still leaves four.
          const script = `const s=require('dgram').createSocket('udp4');let n=0;const t=setInterval(()=>{s.send('weft',${port},'${toIp}');if(++n===5){clearInterval(t);s.close()}},100)`;
          from.spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
        } else if (m.from) {
          clearTimeout(timer);
          resolve(m.from);
        }
      });
    });
    return await seen;
  } finally {
    lines.close();
    listener.kill();
  }
}

for (const nftables of [false, true]) {
  const mode = nftables ? 'nftables' : 'iptables';
  describe(`masquerade behaviour, ${mode} mode`, () => {
    it("a pod reaches an outside host with its node's address; pod-to-pod keeps the pod's address", async () => {
      const lab = Lab.create(`${PREFIX}${nftables ? 'n' : 'i'}`, 2, 1500);
      try {
        const [n1, n2] = lab.nodes;
        const out = lab.addHost('out', '192.168.77.100');
        n1.ns.ip('route', 'add', n2.subnet, 'via', n2.underlayIp);
        n2.ns.ip('route', 'add', n1.subnet, 'via', n1.underlayIp);

        // Before any rule: the pod's own address leaves the node.
        assert.equal(await sourceSeen(n1.pod, out, '192.168.77.100'), n1.podIp, 'no masquerade without rules');
        if (!nftables) {
          // A host whose FORWARD policy is DROP (Docker's) drops pod traffic until the forward rules are in.
          for (const n of [n1, n2]) n.ns.exec('iptables', ['-P', 'FORWARD', 'DROP']);
          assert.equal(await sourceSeen(n1.pod, out, '192.168.77.100'), null, 'FORWARD DROP drops pod traffic');
        }

        for (const n of lab.nodes) await mustApply(n.ns, plan({ nftables, subnet: n.subnet }));

        assert.equal(await sourceSeen(n1.pod, out, '192.168.77.100'), n1.underlayIp, 'pod -> outside: the node\'s address');
        assert.equal(await sourceSeen(n2.pod, out, '192.168.77.100'), n2.underlayIp, 'pod2 -> outside: node2\'s address');
        assert.equal(await sourceSeen(n1.pod, n2.pod, n2.podIp), n1.podIp, 'pod1 -> pod2: the pod\'s address');
        assert.equal(await sourceSeen(n2.pod, n1.pod, n1.podIp), n2.podIp, 'pod2 -> pod1: the pod\'s address');

        // From outside the Network to a remote pod through node1: iptables masquerades it
        // (! -s Network -d Network), flannel's nft rule set returns first (saddr != subnet,
        // daddr Network) and leaves the source as it was. Both are flannel's behaviour.
        out.ip('route', 'add', NETWORK, 'via', n1.underlayIp);
        assert.equal(await sourceSeen(out, n2.pod, n2.podIp), nftables ? '192.168.77.100' : n1.underlayIp, 'outside -> remote pod via node1');

        if (nftables) {
          // In nftables an accept in one base chain does not overrule a drop in another: flannel's
          // forward chain does not open a FORWARD policy of DROP set through iptables (nor would flannel's).
          n1.ns.exec('iptables', ['-P', 'FORWARD', 'DROP']);
          assert.equal(await sourceSeen(n1.pod, out, '192.168.77.100'), null, 'iptables FORWARD DROP still drops in nft mode');
        }
      } finally {
        lab.destroy();
      }
    });
  });
}
