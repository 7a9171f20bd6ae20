// weft's vxlan against the Linux kernel's: node1 runs weft, node2 a stock
// kernel flannel.1 set up exactly as flannel does (nolearning, dstport
// 8472, permanent neigh + fdb, onlink route), offloads left on and no
// ethtool workaround, on a veth underlay as in kind. Its inner TCP/UDP
// checksums then arrive unfilled (partial) and its TCP super-packets whole;
// weft must take both. Ping and 20 MB of TCP both ways, with weft's
// offloads on and off, and a capture on node2's eth0 decoded by tcpdump's
// own VXLAN dissector.
//
//   pod1 - cni0 - [node1: weft flannel.1 (TUN)] - eth0 ==br0== eth0 - [node2: kernel flannel.1] - cni0 - pod2
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { EngineProcess } from '../../lab/engine-process';
import { addKernelVxlanPeer, setupKernelVxlan } from '../../lab/kernel-vxlan';
import { deleteNamespaces, run, runPrefix } from '../../lab/netns';
import { engineArgs, peerOf, ping, tcpTransfer } from '../../lab/overlay';
import { Lab } from '../../lab/topology';

const PREFIX = runPrefix('wki');
after(() => deleteNamespaces(PREFIX));

const WEFT_MAC = '02:11:22:33:44:01';
const KERNEL_MAC = '02:11:22:33:44:02';

for (const offload of [true, false]) describe(`weft vxlan <-> kernel vxlan (flannel.1), weft's offloads ${offload ? 'on' : 'off'}`, () => {
  it('carries ping and TCP both ways, and the wire is standard VXLAN', async (t) => {
    const lab = Lab.create(`${PREFIX}${offload ? 'o' : 'n'}`, 2, 1450);
    const pcap = path.join(os.tmpdir(), `${PREFIX}${offload ? 'o' : 'n'}.pcap`);
    try {
      const [n1, n2] = lab.nodes;
      setupKernelVxlan(n2, KERNEL_MAC);
      assert.match(n2.ns.exec('ethtool', ['-k', 'flannel.1']), /tx-checksum-ip-generic: on/, 'a stock flannel.1');
      addKernelVxlanPeer(n2, peerOf(n1, WEFT_MAC));
      const weft = await EngineProcess.start(n1.ns, [...engineArgs('vxlan', n1, WEFT_MAC), ...(offload ? [] : ['--no-offload'])]);
      try {
        await weft.setPeers([peerOf(n2, KERNEL_MAC)]);

        const capture = n2.ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-U', '-w', pcap, '-c', '8', 'udp', 'port', '8472']);
        let capErr = '';
        capture.stderr!.on('data', (d: Buffer) => (capErr += d.toString()));
        // tcpdump says "listening on" once the capture is live.
        for (let i = 0; i < 100 && !capErr.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 50));

        assert.equal(ping(n1.pod, n2.podIp, 4).received, 4, 'weft pod -> kernel pod');
        assert.equal(ping(n2.pod, n1.podIp, 4).received, 4, 'kernel pod -> weft pod');
        const exited = new Promise((r) => capture.once('exit', r));
        const timer = setTimeout(() => capture.kill('SIGINT'), 5000);
        await exited;
        clearTimeout(timer);

        // With offloads on, what weft sends the kernel during a bulk transfer
        // must still be plain datagrams within the underlay MTU, each inner
        // TCP segment with a correct checksum. A veth would carry weft's
        // UDP_SEGMENT runs whole to the peer namespace (as no NIC does), so
        // node1's eth0 is made a NIC without UDP segmentation offload: the
        // kernel cuts the runs into the datagrams a wire would carry.
        n1.ns.exec('ethtool', ['-K', 'eth0', 'tx-udp-segmentation', 'off']);
        const bulkPcap = `${pcap}.bulk`;
        const bulk = n2.ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-U', '-s', '0', '-w', bulkPcap, '-c', '400', 'udp', 'dst', 'port', '8472', 'and', 'src', 'host', n1.underlayIp]);
        let bulkErr = '';
        bulk.stderr!.on('data', (d: Buffer) => (bulkErr += d.toString()));
        for (let i = 0; i < 100 && !bulkErr.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 50));
        for (const [from, to, ip, what] of [
          [n1.pod, n2.pod, n2.podIp, 'weft -> kernel'],
          [n2.pod, n1.pod, n1.podIp, 'kernel -> weft'],
        ] as const) {
          const t = await tcpTransfer(from, to, ip, 20 * 1024 * 1024);
          assert.equal(t.receivedBytes, t.bytes, what);
          assert.equal(t.receivedSha256, t.sentSha256, what);
        }
        bulk.kill('SIGINT');
        await new Promise((r) => (bulk.exitCode !== null ? r(null) : bulk.once('exit', r)));
        const verbose = run('tcpdump', ['-r', bulkPcap, '-n', '-vv', '-T', 'vxlan']);
        fs.rmSync(bulkPcap, { force: true });
        const outerLengths = [...verbose.matchAll(/proto UDP \(17\), length (\d+)\)/g)].map((m) => Number(m[1]));
        assert.ok(outerLengths.length >= 100, `captured ${outerLengths.length} datagrams`);
        assert.ok(Math.max(...outerLengths) <= 1500, `largest datagram ${Math.max(...outerLengths)} bytes`);
        assert.ok(outerLengths.filter((l) => l === 1500).length > 0, 'full-size segments were sent');
        const tcpChecks = [...verbose.matchAll(/cksum 0x[0-9a-f]+ \((correct|incorrect)[^)]*\)/g)].map((m) => m[1]);
        assert.ok(tcpChecks.length >= 100, `checked ${tcpChecks.length} checksums`);
        assert.ok(!tcpChecks.includes('incorrect'), 'every inner checksum correct');
        const s = await weft.stats();
        const drops = Object.entries(s.counters).filter(([k, v]) => k.includes('_drop_') && v.packets > 0);
        assert.deepEqual(drops, [], 'weft dropped nothing the kernel sent');
        // The kernel's TCP arrived with its checksums left for a NIC: most
        // of 20 MB in super-packets (up to 64 KB each) and the ACKs of the
        // other transfer.
        t.diagnostic(`rx_packets ${s.counters.rx_packets.packets}, rx_csum_partial ${s.counters.rx_csum_partial.packets} (${s.counters.rx_csum_partial.bytes} bytes)`);
        assert.ok(s.counters.rx_csum_partial.bytes >= 20 * 1024 * 1024, `rx_csum_partial ${JSON.stringify(s.counters.rx_csum_partial)}`);

        // -T vxlan: decode port 8472 as VXLAN (tcpdump only assumes 4789).
        // Each packet prints as two lines: the outer frame ending in the
        // VXLAN header, then the inner Ethernet frame.
        const decoded = run('tcpdump', ['-r', pcap, '-n', '-e', '-T', 'vxlan']);
        const lines = decoded.split('\n');
        const packets = lines.flatMap((l, i) => (l.includes('VXLAN') ? [{ outer: l, inner: lines[i + 1] ?? '' }] : []));
        assert.ok(packets.length >= 4, decoded);
        const esc = (ip: string) => ip.replace(/\./g, '\\.');
        let fromWeft = 0;
        let fromKernel = 0;
        for (const p of packets) {
          assert.match(p.outer, /VXLAN, flags \[I\] \(0x08\), vni 1$/);
          if (new RegExp(`${esc(n1.underlayIp)}\\.8472 > ${esc(n2.underlayIp)}\\.8472:`).test(p.outer)) {
            assert.match(p.inner, new RegExp(`^${WEFT_MAC} > ${KERNEL_MAC}, ethertype IPv4 .*: ${esc(n1.podIp)} > ${esc(n2.podIp)}: ICMP`));
            fromWeft++;
          } else {
            assert.match(p.outer, new RegExp(`${esc(n2.underlayIp)}\\.\\d+ > ${esc(n1.underlayIp)}\\.8472:`));
            assert.match(p.inner, new RegExp(`^${KERNEL_MAC} > ${WEFT_MAC}, ethertype IPv4 .*: ${esc(n2.podIp)} > ${esc(n1.podIp)}: ICMP`));
            fromKernel++;
          }
        }
        assert.ok(fromWeft > 0 && fromKernel > 0, decoded);
      } finally {
        await weft.stop();
      }
    } finally {
      lab.destroy();
      fs.rmSync(pcap, { force: true });
    }
  });
});
