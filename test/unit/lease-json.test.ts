// flannel's lease value (pkg/subnet/subnet.go LeaseAttrs through Go's
// encoding/json): the exact bytes weft writes, and what it accepts from a
// flannel node.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeLeaseAttrs, encodeLeaseAttrs, vxlanBackendData } from '../../src/store/lease-json';

// Byte for byte what flanneld v0.12 .. HEAD writes (FLANNEL.md §2).
const FLANNEL_VXLAN = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const FLANNEL_UDP = '{"PublicIP":"10.0.2.15","PublicIPv6":null}';

describe('encodeLeaseAttrs', () => {
  it('writes a vxlan lease exactly as flannel does', () => {
    const text = encodeLeaseAttrs({
      PublicIP: '192.168.64.3',
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' },
    });
    assert.equal(text, FLANNEL_VXLAN);
  });

  it('writes a udp lease without BackendType and BackendData', () => {
    assert.equal(encodeLeaseAttrs({ PublicIP: '10.0.2.15', PublicIPv6: null }), FLANNEL_UDP);
  });

  it('puts vxlan data in flannel field order and lowercases the MAC whatever it was given', () => {
    const text = encodeLeaseAttrs({
      PublicIP: '192.168.64.3',
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VtepMAC: 'C6:D2:32:6F:8F:44', VNI: 1 },
    });
    assert.equal(text, FLANNEL_VXLAN);
  });

  it('writes PublicIPv6 when set', () => {
    assert.equal(encodeLeaseAttrs({ PublicIP: '10.0.2.15', PublicIPv6: 'fd00::1' }), '{"PublicIP":"10.0.2.15","PublicIPv6":"fd00::1"}');
  });

  it('escapes <, > and & in other backends\' data as Go does', () => {
    const text = encodeLeaseAttrs({ PublicIP: '10.0.2.15', PublicIPv6: null, BackendType: 'x', BackendData: { note: '<a&b>' } });
    assert.equal(text, '{"PublicIP":"10.0.2.15","PublicIPv6":null,"BackendType":"x","BackendData":{"note":"\\u003ca\\u0026b\\u003e"}}');
    assert.deepEqual(JSON.parse(text).BackendData, { note: '<a&b>' });
  });

  it('refuses to write what flannel could not read', () => {
    assert.throws(() => encodeLeaseAttrs({ PublicIP: '10.0.2', PublicIPv6: null }), /PublicIP "10.0.2" is not an IPv4 address/);
    assert.throws(
      () => encodeLeaseAttrs({ PublicIP: '10.0.2.15', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1 } }),
      /VtepMAC must be a MAC address, got nothing/,
    );
  });
});

describe('decodeLeaseAttrs', () => {
  it('reads flannel\'s vxlan and udp leases, and they round-trip byte for byte', () => {
    const vx = decodeLeaseAttrs(FLANNEL_VXLAN);
    assert.deepEqual(vx, { PublicIP: '192.168.64.3', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } });
    assert.deepEqual(vxlanBackendData(vx), { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' });
    assert.equal(encodeLeaseAttrs(vx), FLANNEL_VXLAN);

    const udp = decodeLeaseAttrs(FLANNEL_UDP);
    assert.deepEqual(udp, { PublicIP: '10.0.2.15', PublicIPv6: null });
    assert.equal(vxlanBackendData(udp), null);
    assert.equal(encodeLeaseAttrs(udp), FLANNEL_UDP);
  });

  it('matches keys case-insensitively, last one winning, as Go\'s decoder does', () => {
    const a = decodeLeaseAttrs('{"publicip":"1.1.1.1","PUBLICIP":"10.1.2.3","backendtype":"vxlan","backenddata":{"vni":7,"vtepmac":"02:00:00:00:00:07"}}');
    assert.deepEqual(a, { PublicIP: '10.1.2.3', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 7, VtepMAC: '02:00:00:00:00:07' } });
  });

  it('ignores fields it does not know (BackendV6Data, future ones) and takes a missing PublicIPv6 as null', () => {
    const a = decodeLeaseAttrs('{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"},"BackendV6Data":null,"Extra":1}');
    assert.equal(a.PublicIPv6, null);
    assert.equal(encodeLeaseAttrs(a), '{"PublicIP":"10.1.2.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}');
  });

  it('normalizes what Go would (IPv4-mapped PublicIP, dashed or uppercase MAC)', () => {
    const a = decodeLeaseAttrs('{"PublicIP":"::ffff:10.1.2.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"AA-BB-CC-DD-EE-FF"}}');
    assert.equal(a.PublicIP, '10.1.2.3');
    assert.deepEqual(a.BackendData, { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' });
  });

  it('keeps other backends\' data as it is', () => {
    const a = decodeLeaseAttrs('{"PublicIP":"10.1.2.3","PublicIPv6":null,"BackendType":"host-gw","BackendData":{"x":[1,2]}}');
    assert.deepEqual(a.BackendData, { x: [1, 2] });
  });

  const bad: [string, string, RegExp][] = [
    ['empty', '', /lease value is not JSON/],
    ['truncated', '{"PublicIP":"10.1.2.3"', /lease value is not JSON/],
    ['not an object', '["10.1.2.3"]', /lease value is not a JSON object/],
    ['a string', '"10.1.2.3"', /lease value is not a JSON object/],
    ['no PublicIP', '{"PublicIPv6":null}', /lease has no PublicIP/],
    ['null PublicIP', '{"PublicIP":null}', /lease has no PublicIP/],
    ['numeric PublicIP', '{"PublicIP":167837953}', /PublicIP must be a string, got 167837953/],
    ['PublicIP not an address', '{"PublicIP":"10.1.2.300"}', /PublicIP "10.1.2.300" is not an IPv4 address/],
    ['PublicIP IPv6', '{"PublicIP":"fd00::1"}', /PublicIP "fd00::1" is not an IPv4 address/],
    ['PublicIP leading zero', '{"PublicIP":"10.01.2.3"}', /is not an IPv4 address/],
    ['bad PublicIPv6', '{"PublicIP":"10.1.2.3","PublicIPv6":"10.1.2.4"}', /PublicIPv6 "10.1.2.4" is not an IPv6 address/],
    ['BackendType not a string', '{"PublicIP":"10.1.2.3","BackendType":5}', /BackendType must be a string, got 5/],
    ['vxlan without data', '{"PublicIP":"10.1.2.3","BackendType":"vxlan"}', /vxlan lease BackendData must be an object with VNI and VtepMAC, got nothing/],
    ['vxlan data not an object', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":"x"}', /BackendData must be an object/],
    ['vxlan VNI a string', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":"1","VtepMAC":"02:00:00:00:00:01"}}', /BackendData.VNI must be an integer 0..16777215, got "1"/],
    ['vxlan VNI too big', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":16777216,"VtepMAC":"02:00:00:00:00:01"}}', /VNI must be an integer/],
    ['vxlan VNI fractional', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1.5,"VtepMAC":"02:00:00:00:00:01"}}', /VNI must be an integer/],
    ['vxlan no MAC', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1}}', /BackendData.VtepMAC must be a MAC address, got nothing/],
    ['vxlan short MAC', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:01"}}', /VtepMAC must be a MAC address, got "02:00:00:00:01"/],
    ['vxlan mixed separators', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00-00:00:00:01"}}', /VtepMAC must be a MAC address/],
  ];
  for (const [name, text, want] of bad) {
    it(`refuses a lease value with ${name}`, () => {
      assert.throws(() => decodeLeaseAttrs(text), want);
    });
  }
});
