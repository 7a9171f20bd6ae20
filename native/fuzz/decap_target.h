// The body of fuzz_decap_vxlan and fuzz_decap_udp: what the engine's rx
// thread does with one UDP payload from the underlay, with the receiver's
// parameters taken from the input too: weft::decap, then weft::check_inner
// against a two-peer FIB, then the inner TCP/UDP checksum
// (weft::inspect_l4_checksum, weft::complete_l4_checksum) and, for a TCP
// super-packet, its cutting to the TUN MTU (weft::gso_segment), as the
// engine does without offload.
//
// Input: vni (3 bytes, big-endian) | local VtepMAC (6) | max_inner (2, BE)
//        | our subnet (4, BE) | its prefix length (1) | flags (1):
//          bit 0 strict source, bit 1 verify every checksum
//        | outer source (4, BE)
//        | two FIB entries, each: prefix (4, BE) | length (1) | public IP (4, BE)
//        | the UDP payload.
// For vxlan the payload has to carry the same VNI and MAC to get past the
// first checks; libFuzzer's comparison tracing finds them, and the seeds
// start out matching. Besides memory safety, every verdict is checked
// against an independent reading of the bytes: accepted exactly when valid,
// and a drop reason only when it is true (the flood and spoofing tests
// count by reason).
#pragma once

#include "core/encap.h"
#include "core/fib.h"
#include "core/offload.h"
#include "fuzz/fuzz_util.h"

namespace fuzz {

constexpr size_t kDecapPrefix = 39;

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

inline uint32_t mask_of(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

// check_inner's answer, worked out from the rule and the two entries.
inline weft::Counter expected_inner(const weft::InnerRule& r, const uint8_t* ip, uint32_t outer_src,
                                    const weft::FibEntry* entries, size_t n) {
  uint32_t m = mask_of(r.prefix_len);
  uint32_t dst = be32(ip + 16), src = be32(ip + 12);
  if ((dst & m) != r.subnet) return weft::Counter::rx_drop_inner_dst;
  if (r.prefix_len <= 30 && dst == (r.subnet | ~m)) return weft::Counter::rx_drop_inner_dst;
  if (!r.strict_source) return weft::Counter::rx_packets;
  // Longest prefix wins; of two equal prefixes the later one (the Fib keeps it).
  const weft::FibEntry* best = nullptr;
  for (size_t i = 0; i < n; i++) {
    const weft::FibEntry& e = entries[i];
    if (e.prefix_len > 32 || (src & mask_of(e.prefix_len)) != (e.prefix & mask_of(e.prefix_len))) continue;
    if (!best || e.prefix_len >= best->prefix_len) best = &e;
  }
  return best && best->peer.public_ip == outer_src ? weft::Counter::rx_packets : weft::Counter::rx_drop_inner_src;
}

inline int fuzz_decap(weft::Format format, const uint8_t* data, size_t size) {
  if (size < kDecapPrefix) return 0;
  weft::DecapParams p;
  p.format = format;
  p.vni = be24(data);
  std::memcpy(p.local_mac.data(), data + 3, 6);
  p.max_inner = be16(data + 9);
  weft::InnerRule rule;
  rule.prefix_len = static_cast<uint8_t>(data[15] % 33);
  rule.subnet = be32(data + 11) & mask_of(rule.prefix_len);  // as the engine keeps it
  rule.strict_source = (data[16] & 1) != 0;
  bool verify = (data[16] & 2) != 0;
  uint32_t outer_src = be32(data + 17);
  weft::FibEntry entries[2];
  for (size_t i = 0; i < 2; i++) {
    const uint8_t* e = data + 21 + 9 * i;
    entries[i].prefix = be32(e);
    entries[i].prefix_len = e[4];  // > 32 too: the Fib must skip it
    entries[i].peer.public_ip = be32(e + 5);
  }
  weft::FibTable table;
  table.replace({entries[0], entries[1]});
  const weft::Fib& fib = *table.enter(0);
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
  bool header = vx_len && vx_flags && vx_vni && vx_mac && vx_type && v4 && in_len >= 20 && ihl >= 20 &&
                ihl <= in_len && tot >= ihl && tot <= in_len;
  // Larger than max_inner: only a whole TCP segment with payload whose
  // headers fit in max_inner (a sender's GSO super-packet).
  size_t tcp_hdr = 0;
  if (header && ip[9] == 6 && (be16(ip + 6) & 0x3fff) == 0 && tot >= ihl + 20) {
    tcp_hdr = ihl + static_cast<size_t>(ip[ihl + 12] >> 4) * 4;
  }
  bool super_ok = tcp_hdr >= ihl + 20 && tcp_hdr < tot && tcp_hdr < p.max_inner;
  bool accept = header && (tot <= p.max_inner || super_ok);
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
    case weft::Counter::rx_drop_oversized: FUZZ_CHECK(tot > p.max_inner && !super_ok); break;
    default: break;
  }
  if (r.verdict != weft::Counter::rx_packets) return 0;

  FUZZ_CHECK(r.inner_off == weft::encap_len(format));
  FUZZ_CHECK(r.inner_off <= len && r.inner_len <= len - r.inner_off);
  FUZZ_CHECK(r.inner_len >= weft::kIpv4MinHeader);
  FUZZ_CHECK(r.super_packet == (r.inner_len > p.max_inner));
  const uint8_t* inner = payload + r.inner_off;
  touch(inner, r.inner_len);
  size_t total = 0;
  FUZZ_CHECK(weft::check_ipv4(inner, r.inner_len, &total) == weft::Counter::rx_packets);
  FUZZ_CHECK(total == r.inner_len);
  FUZZ_CHECK(inner == ip && r.inner_len == tot);

  // The inner addresses, as the engine checks them next.
  weft::Counter iv = weft::check_inner(rule, inner, outer_src, fib);
  FUZZ_CHECK(iv == expected_inner(rule, inner, outer_src, entries, 2));
  if (iv != weft::Counter::rx_packets) return 0;

  // The checksum, on a copy the engine may write to.
  std::vector<uint8_t> pkt(inner, inner + r.inner_len);
  Csum want = l4_csum_class(pkt.data(), pkt.size());
  weft::L4Csum got = weft::inspect_l4_checksum(pkt.data(), pkt.size(), verify || r.super_packet);
  switch (got) {
    case weft::L4Csum::none: FUZZ_CHECK(want == Csum::none); break;
    case weft::L4Csum::unchecked: FUZZ_CHECK(!verify && !r.super_packet && (want == Csum::valid || want == Csum::bad)); break;
    case weft::L4Csum::valid: FUZZ_CHECK(want == Csum::valid); break;
    case weft::L4Csum::partial: FUZZ_CHECK(want == Csum::partial); break;
    case weft::L4Csum::bad: FUZZ_CHECK(want == Csum::bad && (verify || r.super_packet)); break;
  }
  if (got == weft::L4Csum::partial) {
    std::vector<uint8_t> before = pkt;
    weft::complete_l4_checksum(pkt.data(), pkt.size());
    FUZZ_CHECK(l4_csum_class(pkt.data(), pkt.size()) == Csum::valid);
    size_t field = size_t{pkt[0] & 0x0fu} * 4 + weft::l4_checksum_offset(pkt[9]);
    for (size_t i = 0; i < pkt.size(); i++) {
      if (i != field && i != field + 1) FUZZ_CHECK(pkt[i] == before[i]);
    }
  }
  if (!r.super_packet || (got != weft::L4Csum::valid && got != weft::L4Csum::partial)) return 0;

  // A super-packet cut to max_inner, as the engine does without offload:
  // every piece fits the TUN and carries a right checksum.
  weft::VnetHdr vh;
  vh.gso_type = weft::kGsoTcpV4;
  vh.gso_size = static_cast<uint16_t>(p.max_inner - tcp_hdr);
  constexpr size_t kCap = 256 * 1024;  // the engine's buffer
  Guarded out(kCap);
  weft::Segments sg = weft::gso_segment(vh, pkt.data(), pkt.size(), out.data(), kCap, 0);
  FUZZ_CHECK(out.intact());
  if (sg.verdict != weft::Counter::tx_packets) return 0;  // too many pieces: the engine drops it
  size_t payload_total = 0;
  for (unsigned k = 0; k < sg.count; k++) {
    const uint8_t* piece = out.data() + k * sg.stride;
    size_t plen = k + 1 < sg.count ? sg.seg_len : sg.last_len;
    FUZZ_CHECK(plen <= p.max_inner && plen > tcp_hdr);
    FUZZ_CHECK(l4_csum_class(piece, plen) == Csum::valid);
    payload_total += plen - tcp_hdr;
  }
  FUZZ_CHECK(payload_total == pkt.size() - tcp_hdr);
  return 0;
}

}  // namespace fuzz
