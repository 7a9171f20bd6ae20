// The decisions src/netfilter takes from version strings, which the netns
// tests cannot vary (the machine has one iptables and one nft): when
// --random-fully and iptables-restore --wait are used (go-iptables: 1.6.2),
// and which nft knftables (so flannel) refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseCidr4 } from '../../src/cidr';
import { iptablesFeatures, masqRules, parseIptablesVersion, restoreLine } from '../../src/netfilter/iptables';
import { checkNftVersion } from '../../src/netfilter/nftables';

describe('iptables version', () => {
  it('reads the version and the mode', () => {
    assert.deepEqual(parseIptablesVersion('iptables v1.8.9 (nf_tables)\n'), { major: 1, minor: 8, patch: 9, mode: 'nf_tables' });
    assert.deepEqual(parseIptablesVersion('iptables v1.8.7 (legacy)\n'), { major: 1, minor: 8, patch: 7, mode: 'legacy' });
    // Before 1.8 there was no mode: legacy.
    assert.deepEqual(parseIptablesVersion('iptables v1.6.1\n'), { major: 1, minor: 6, patch: 1, mode: 'legacy' });
    assert.throws(() => parseIptablesVersion('command not found'), /no iptables version found in "command not found"/);
  });

  it('--random-fully and iptables-restore --wait from 1.6.2 on', () => {
    const features = (v: string) => iptablesFeatures(parseIptablesVersion(`iptables v${v}`));
    assert.deepEqual(features('1.6.1'), { randomFully: false, restoreWait: false });
    assert.deepEqual(features('1.6.2'), { randomFully: true, restoreWait: true });
    assert.deepEqual(features('1.4.21'), { randomFully: false, restoreWait: false });
    assert.deepEqual(features('1.10.0'), { randomFully: true, restoreWait: true });
  });

  it('without --random-fully support the MASQUERADE rules are plain, the rest the same', () => {
    const net = parseCidr4('10.244.0.0/16');
    const sub = parseCidr4('10.244.1.0/24');
    const plain = masqRules(net, sub, false).map((r) => restoreLine('-A', r));
    const random = masqRules(net, sub, true).map((r) => restoreLine('-A', r));
    assert.equal(plain.length, 7);
    assert.deepEqual(plain.slice(0, 5), random.slice(0, 5));
    assert.equal(plain[5], '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE');
    assert.equal(random[5], `${plain[5]} --random-fully`);
    assert.equal(random[6], '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully');
  });
});

describe('nft version', () => {
  it('refuses what knftables refuses: before v1.0.1', () => {
    assert.throws(() => checkNftVersion('nftables v0.9.8 (E.D.S.)\n'), { message: 'nft version must be v1.0.1 or later (got nftables v0.9.8 (E.D.S.))' });
    assert.throws(() => checkNftVersion('nftables v1.0.0 (Fearless Fosdick #2)\n'), /must be v1\.0\.1 or later/);
    checkNftVersion('nftables v1.0.1 (Fearless Fosdick #3)\n');
    checkNftVersion('nftables v1.0.6 (Lester Gooch #5)\n');
  });
});
