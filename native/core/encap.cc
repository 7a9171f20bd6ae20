#include "core/encap.h"

namespace weft {

const char* counter_name(Counter c) {
  static const char* const names[] = {
#define WEFT_NAME(name) #name,
      WEFT_COUNTERS(WEFT_NAME)
#undef WEFT_NAME
  };
  size_t i = static_cast<size_t>(c);
  return i < kCounterCount ? names[i] : "unknown";
}

Counter check_ipv4(const uint8_t* pkt, size_t len, size_t* total) {
  if (len < 1 || (pkt[0] >> 4) != 4) return Counter::rx_drop_not_ipv4;
  if (len < kIpv4MinHeader) return Counter::rx_drop_truncated;
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (ihl < kIpv4MinHeader || ihl > len) return Counter::rx_drop_bad_ihl;
  size_t tot = load_be16(pkt + 2);
  if (tot < ihl || tot > len) return Counter::rx_drop_bad_length;
  *total = tot;
  return Counter::rx_packets;
}

DecapResult decap(const DecapParams& p, const uint8_t* payload, size_t len) {
  size_t off = 0;
  if (p.format == Format::vxlan) {
    if (len < kVxlanEncap) return {Counter::rx_drop_truncated, 0, 0};
    // Flags word: only the I bit may be set; the byte after the VNI is
    // reserved. Linux (without GBP/GPE) drops anything else, and so do we.
    if (load_be32(payload) != 0x08000000u || payload[7] != 0) {
      return {Counter::rx_drop_bad_vxlan_flags, 0, 0};
    }
    uint32_t vni = (uint32_t{payload[4]} << 16) | (uint32_t{payload[5]} << 8) | payload[6];
    if (vni != p.vni) return {Counter::rx_drop_wrong_vni, 0, 0};
    const uint8_t* eth = payload + kVxlanHeader;
    if (std::memcmp(eth, p.local_mac.data(), 6) != 0) return {Counter::rx_drop_wrong_mac, 0, 0};
    if (load_be16(eth + 12) != kEtherTypeIpv4) return {Counter::rx_drop_bad_ethertype, 0, 0};
    off = kVxlanEncap;
  }
  size_t total = 0;
  Counter v = check_ipv4(payload + off, len - off, &total);
  if (v != Counter::rx_packets) return {v, 0, 0};
  if (total <= p.max_inner) return {Counter::rx_packets, off, total};
  const uint8_t* ip = payload + off;
  size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  bool tcp = ip[9] == 6 && (load_be16(ip + 6) & 0x3fff) == 0 && total - ihl >= 20;
  size_t hdr = tcp ? ihl + static_cast<size_t>(ip[ihl + 12] >> 4) * 4 : 0;
  if (!tcp || hdr < ihl + 20 || hdr >= total || hdr >= p.max_inner) return {Counter::rx_drop_oversized, 0, 0};
  return {Counter::rx_packets, off, total, true};
}

Counter check_inner(const InnerRule& r, const uint8_t* inner, uint32_t outer_src, const Fib& fib) {
  uint32_t mask = r.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - r.prefix_len);
  uint32_t dst = ipv4_dst(inner);
  // /31 and /32 have no broadcast address (RFC 3021).
  bool broadcast = r.prefix_len <= 30 && dst == (r.subnet | ~mask);
  if ((dst & mask) != r.subnet || broadcast) return Counter::rx_drop_inner_dst;
  if (r.strict_source) {
    const Peer* from = fib.lookup(ipv4_src(inner));
    if (!from || from->public_ip != outer_src) return Counter::rx_drop_inner_src;
  }
  return Counter::rx_packets;
}

bool is_own_datagram(const uint8_t* pkt, size_t len, uint32_t local_ip, uint16_t port) {
  if (len < kIpv4MinHeader || (pkt[0] >> 4) != 4 || pkt[9] != 17) return false;
  if ((load_be16(pkt + 6) & 0x1fff) != 0) return false;  // a later fragment has no UDP header
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (ihl < kIpv4MinHeader || len < ihl + kUdpHeader) return false;
  return (local_ip == 0 || ipv4_src(pkt) == local_ip) && load_be16(pkt + ihl) == port;
}

Counter check_tx_ipv4(const uint8_t* pkt, size_t len) {
  if (len < 1 || (pkt[0] >> 4) != 4) return Counter::tx_drop_not_ipv4;
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (len < kIpv4MinHeader || ihl < kIpv4MinHeader || ihl > len || load_be16(pkt + 2) != len) {
    return Counter::tx_drop_bad_ipv4;
  }
  return Counter::tx_packets;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for the 16-bit word holding TTL.
static void decrement_ttl(uint8_t* ip) {
  uint16_t old_word = load_be16(ip + 8);
  ip[8] = static_cast<uint8_t>(ip[8] - 1);
  uint16_t new_word = load_be16(ip + 8);
  uint32_t sum = uint32_t{static_cast<uint16_t>(~load_be16(ip + 10))} +
                 uint32_t{static_cast<uint16_t>(~old_word)} + new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  store_be16(ip + 10, static_cast<uint16_t>(~sum));
}

Counter encap(const EncapParams& p, const Mac& peer_mac, uint8_t* buf, size_t headroom, size_t len,
              size_t* out_off, size_t* out_len) {
  uint8_t* inner = buf + headroom;
  if (len < kIpv4MinHeader) return Counter::tx_drop_bad_ipv4;
  if (p.format == Format::udp) {
    // flannel's proxy decrements the TTL as a router would and drops at 0.
    if (inner[8] <= 1) return Counter::tx_drop_ttl;
    decrement_ttl(inner);
    *out_off = headroom;
    *out_len = len;
    return Counter::tx_packets;
  }
  uint8_t* h = inner - kVxlanEncap;
  h[0] = 0x08;
  h[1] = h[2] = h[3] = 0;
  h[4] = static_cast<uint8_t>(p.vni >> 16);
  h[5] = static_cast<uint8_t>(p.vni >> 8);
  h[6] = static_cast<uint8_t>(p.vni);
  h[7] = 0;
  std::memcpy(h + kVxlanHeader, peer_mac.data(), 6);
  std::memcpy(h + kVxlanHeader + 6, p.local_mac.data(), 6);
  store_be16(h + kVxlanHeader + 12, kEtherTypeIpv4);
  *out_off = headroom - kVxlanEncap;
  *out_len = len + kVxlanEncap;
  return Counter::tx_packets;
}

}  // namespace weft
