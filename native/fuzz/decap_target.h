// The body of fuzz_decap_vxlan and fuzz_decap_udp: weft::decap over one
// UDP payload as it arrives from the underlay, with the receiver's
// parameters taken from the input too.
//
// Input: vni (3 bytes, big-endian) | local VtepMAC (6) | max_inner (2, BE)
//        | the UDP payload.
// For vxlan the payload has to carry the same VNI and MAC to get past the
// first checks; libFuzzer's comparison tracing finds them, and the seeds
// start out matching. Besides memory safety, the verdict is checked
// against an independent reading of the bytes: accepted exactly when valid,
// and a drop reason only when it is true (the flood test counts by reason).
#pragma once

#include "core/encap.h"
#include "fuzz/fuzz_util.h"

namespace fuzz {

constexpr size_t kDecapPrefix = 11;

inline bool is_decap_verdict(weft::Format f, weft::Counter c) {
  using weft::Counter;
  switch (c) {
    case Counter::rx_packets:
    case Counter::rx_drop_truncated:
    case Counter::rx_drop_oversized:
    case Counter::rx_drop_not_ipv4:
    case Counter::rx_drop_bad_ihl:
    case Counter::rx_drop_bad_length:
      return true;
    case Counter::rx_drop_bad_vxlan_flags:
    case Counter::rx_drop_wrong_vni:
    case Counter::rx_drop_wrong_mac:
    case Counter::rx_drop_bad_ethertype:
      return f == weft::Format::vxlan;
    default:  // tx_*, and rx reasons only the engine decides
      return false;
  }
}

inline int fuzz_decap(weft::Format format, const uint8_t* data, size_t size) {
  if (size < kDecapPrefix) return 0;
  weft::DecapParams p;
  p.format = format;
  p.vni = be24(data);
  std::memcpy(p.local_mac.data(), data + 3, 6);
  p.max_inner = be16(data + 9);
  // The payload is the tail of libFuzzer's own allocation, which ends
  // exactly at data + size: a read past it is an ASan report.
  const uint8_t* payload = data + kDecapPrefix;
  size_t len = size - kDecapPrefix;

  weft::DecapResult r = weft::decap(p, payload, len);
  FUZZ_CHECK(static_cast<size_t>(r.verdict) < weft::kCounterCount);
  FUZZ_CHECK(is_decap_verdict(format, r.verdict));

  // An independent reading of the same bytes: what RFC 7348 / RFC 791 and
  // Linux's vxlan_rcv accept, and whether the drop reason given is true.
  bool vx = format == weft::Format::vxlan;
  bool vx_len = !vx || len >= 22;
  bool vx_flags = !vx || (vx_len && be32(payload) == 0x08000000u && payload[7] == 0);
  bool vx_vni = !vx || (vx_len && be24(payload + 4) == p.vni);
  bool vx_mac = !vx || (vx_len && std::memcmp(payload + 8, p.local_mac.data(), 6) == 0);
  bool vx_type = !vx || (vx_len && be16(payload + 20) == 0x0800);
  size_t off = vx ? 22 : 0;
  size_t in_len = vx_len ? len - off : 0;
  const uint8_t* ip = payload + (vx_len ? off : 0);
  bool v4 = in_len >= 1 && (ip[0] >> 4) == 4;
  size_t ihl = in_len >= 1 ? size_t{ip[0] & 0x0fu} * 4 : 0;
  size_t tot = in_len >= 4 ? be16(ip + 2) : 0;
  bool accept = vx_len && vx_flags && vx_vni && vx_mac && vx_type && v4 && in_len >= 20 && ihl >= 20 &&
                ihl <= in_len && tot >= ihl && tot <= in_len && tot <= p.max_inner;
  FUZZ_CHECK(accept == (r.verdict == weft::Counter::rx_packets));
  switch (r.verdict) {
    case weft::Counter::rx_drop_bad_vxlan_flags: FUZZ_CHECK(vx_len && !vx_flags); break;
    case weft::Counter::rx_drop_wrong_vni: FUZZ_CHECK(vx_len && !vx_vni); break;
    case weft::Counter::rx_drop_wrong_mac: FUZZ_CHECK(vx_len && !vx_mac); break;
    case weft::Counter::rx_drop_bad_ethertype: FUZZ_CHECK(vx_len && !vx_type); break;
    case weft::Counter::rx_drop_truncated: FUZZ_CHECK(!vx_len || in_len < 20); break;
    case weft::Counter::rx_drop_not_ipv4: FUZZ_CHECK(vx_len && !v4); break;
    case weft::Counter::rx_drop_bad_ihl: FUZZ_CHECK(ihl < 20 || ihl > in_len); break;
    case weft::Counter::rx_drop_bad_length: FUZZ_CHECK(tot < ihl || tot > in_len); break;
    case weft::Counter::rx_drop_oversized: FUZZ_CHECK(tot > p.max_inner); break;
    default: break;
  }
  if (r.verdict != weft::Counter::rx_packets) return 0;

  FUZZ_CHECK(r.inner_off == weft::encap_len(format));
  FUZZ_CHECK(r.inner_off <= len && r.inner_len <= len - r.inner_off);
  FUZZ_CHECK(r.inner_len >= weft::kIpv4MinHeader);
  FUZZ_CHECK(r.inner_len <= p.max_inner);
  const uint8_t* inner = payload + r.inner_off;
  touch(inner, r.inner_len);
  size_t total = 0;
  FUZZ_CHECK(weft::check_ipv4(inner, r.inner_len, &total) == weft::Counter::rx_packets);
  FUZZ_CHECK(total == r.inner_len);
  FUZZ_CHECK(inner == ip && r.inner_len == tot);
  return 0;
}

}  // namespace fuzz
