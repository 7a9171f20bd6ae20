// flannel's lease value (pkg/lease/lease.go LeaseAttrs through Go's
// encoding/json): the exact bytes weft writes, and what it accepts from a
// flannel node, decoded once into typed values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { formatIp4, parseIp4 } from '../../src/cidr';
import { decodeLeaseValue, encodeLeaseValue, MAX_LEASE_VALUE_BYTES } from '../../src/store/lease-json';

// Byte for byte what flanneld v0.12 .. HEAD writes (docs/flannel.md §2).
const FLANNEL_VXLAN = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const FLANNEL_UDP = '{"PublicIP":"10.0.2.15","PublicIPv6":null}';
const FLANNEL_HOST_GW = '{"PublicIP":"10.0.2.15","PublicIPv6":null,"BackendType":"host-gw"}';

describe('encodeLeaseValue', () => {
  it('writes vxlan, udp and host-gw leases exactly as flannel does', () => {
    assert.equal(encodeLeaseValue({ publicIp: parseIp4('192.168.64.3'), backend: { type: 'vxlan', vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' } }), FLANNEL_VXLAN);
    assert.equal(encodeLeaseValue({ publicIp: parseIp4('10.0.2.15'), backend: { type: 'udp' } }), FLANNEL_UDP);
    assert.equal(encodeLeaseValue({ publicIp: parseIp4('10.0.2.15'), backend: { type: 'host-gw' } }), FLANNEL_HOST_GW);
  });

  it('refuses to write a lease of a backend weft does not run', () => {
    assert.throws(() => encodeLeaseValue({ publicIp: 1, backend: { type: 'other', name: 'ipip' } }), /does not write leases of backend type "ipip"/);
  });
});

describe('decodeLeaseValue', () => {
  it("reads flannel's leases into typed values, and they round-trip byte for byte", () => {
    const vx = decodeLeaseValue(FLANNEL_VXLAN);
    assert.deepEqual(vx, { publicIp: parseIp4('192.168.64.3'), backend: { type: 'vxlan', vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' } });
    assert.equal(encodeLeaseValue(vx), FLANNEL_VXLAN);
    for (const text of [FLANNEL_UDP, FLANNEL_HOST_GW]) assert.equal(encodeLeaseValue(decodeLeaseValue(text)), text);
  });

  it("matches keys case-insensitively, last one winning, as Go's decoder does", () => {
    const a = decodeLeaseValue('{"publicip":"1.1.1.1","PUBLICIP":"10.1.2.3","backendtype":"vxlan","backenddata":{"vni":7,"vtepmac":"02:00:00:00:00:07"}}');
    assert.deepEqual(a, { publicIp: parseIp4('10.1.2.3'), backend: { type: 'vxlan', vni: 7, vtepMac: '02:00:00:00:00:07' } });
  });

  it('ignores fields it does not know (BackendV6Data, future ones)', () => {
    const a = decodeLeaseValue('{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"},"BackendV6Data":null,"Extra":1}');
    assert.equal(encodeLeaseValue(a), '{"PublicIP":"10.1.2.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}');
  });

  it("normalizes what Go would: an IPv4-mapped PublicIP, a MAC in any of net.ParseMAC's forms", () => {
    for (const mac of ['AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff', 'AA:bb:CC:dd:EE:ff']) {
      const a = decodeLeaseValue(`{"PublicIP":"::ffff:10.1.2.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`);
      assert.equal(formatIp4(a.publicIp), '10.1.2.3');
      assert.deepEqual(a.backend, { type: 'vxlan', vni: 1, vtepMac: 'aa:bb:cc:dd:ee:ff' });
    }
  });

  it('keeps the name of a backend weft does not run, so it can be ignored by name', () => {
    assert.deepEqual(decodeLeaseValue('{"PublicIP":"10.1.2.3","BackendType":"wireguard","BackendData":{"x":[1,2]}}').backend, { type: 'other', name: 'wireguard' });
    assert.deepEqual(decodeLeaseValue('{"PublicIP":"10.1.2.3","BackendType":""}').backend, { type: 'udp' });
  });

  const bad: [string, string, RegExp][] = [
    ['empty', '', /lease value is not JSON/],
    ['truncated', '{"PublicIP":"10.1.2.3"', /lease value is not JSON/],
    ['not an object', '["10.1.2.3"]', /lease value is not a JSON object/],
    ['a string', '"10.1.2.3"', /lease value is not a JSON object/],
    ['no PublicIP', '{"PublicIPv6":null}', /lease has no PublicIP/],
    ['null PublicIP', '{"PublicIP":null}', /lease has no PublicIP/],
    ['numeric PublicIP', '{"PublicIP":167837953}', /PublicIP must be a string, got a number/],
    ['PublicIP not an address', '{"PublicIP":"10.1.2.300"}', /PublicIP is not an IPv4 address/],
    ['PublicIP IPv6', '{"PublicIP":"fd00::1"}', /PublicIP is not an IPv4 address/],
    ['PublicIP leading zero', '{"PublicIP":"10.01.2.3"}', /is not an IPv4 address/],
    ['BackendType not a string', '{"PublicIP":"10.1.2.3","BackendType":5}', /BackendType must be a string, got a number/],
    ['vxlan without data', '{"PublicIP":"10.1.2.3","BackendType":"vxlan"}', /BackendData must be an object with VNI and VtepMAC, got nothing/],
    ['vxlan data not an object', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":"x"}', /BackendData must be an object/],
    ['vxlan VNI a string', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":"1","VtepMAC":"02:00:00:00:00:01"}}', /VNI must be an integer 0..16777215/],
    ['vxlan VNI too big', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":16777216,"VtepMAC":"02:00:00:00:00:01"}}', /VNI must be an integer/],
    ['vxlan VNI fractional', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1.5,"VtepMAC":"02:00:00:00:00:01"}}', /VNI must be an integer/],
    ['vxlan no MAC', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1}}', /VtepMAC is not a MAC address/],
    ['vxlan short MAC', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:01"}}', /VtepMAC is not a MAC address/],
    ['vxlan mixed separators', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00-00:00:00:01"}}', /VtepMAC is not a MAC address/],
  ];
  for (const [name, text, want] of bad) {
    it(`refuses a lease value with ${name}`, () => {
      assert.throws(() => decodeLeaseValue(text), want);
    });
  }

  it('refuses a value larger than any flannel node writes, without quoting it', () => {
    const big = `{"PublicIP":"10.1.2.3","Pad":"${'x'.repeat(MAX_LEASE_VALUE_BYTES)}"}`;
    assert.throws(() => decodeLeaseValue(big), (err: Error) => /lease value is \d+ bytes, more than the 4096/.test(err.message) && !err.message.includes('xxx'));
  });

  it('never quotes the offending text in its errors (a value is anyone\'s text)', () => {
    for (const text of ['{"PublicIP":"secret-token"}', '{"PublicIP":"10.1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"secret-token"}}']) {
      assert.throws(() => decodeLeaseValue(text), (err: Error) => !err.message.includes('secret'));
    }
  });
});
