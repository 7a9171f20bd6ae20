// The transmit side's byte handling: weft::complete_checksum (a NEEDS_CSUM
// packet from the TUN), weft::check_tx_ipv4, weft::is_own_datagram (the
// loop backstop, also on the raw bytes, as a super-packet meets it) and
// weft::encap in place into the headroom, in the engine's order. Then the
// receive side must take back exactly what was sent.
//
// Input: byte 0: bit 0 vxlan (else udp), bits 1-3 extra headroom,
//                bit 4 NEEDS_CSUM
//        vni (3 bytes, BE) | local mac (6) | peer mac (6)
//        | csum_start (2, BE) | csum_offset (2, BE)
//        | our bind address (4, BE; 0 = any) | our port (2, BE) | the packet.
#include <vector>

#include "core/encap.h"
#include "core/offload.h"
#include "fuzz/fuzz_util.h"

namespace {
constexpr size_t kPrefix = 26;

// is_own_datagram's answer, read apart from the core.
bool own_datagram(const uint8_t* p, size_t len, uint32_t ip, uint16_t port) {
  if (len < 20 || (p[0] >> 4) != 4 || p[9] != 17 || (fuzz::be16(p + 6) & 0x1fff) != 0) return false;
  size_t ihl = size_t{p[0] & 0x0fu} * 4;
  if (ihl < 20 || len < ihl + 8) return false;
  return (ip == 0 || fuzz::be32(p + 12) == ip) && fuzz::be16(p + ihl) == port;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefix) return 0;
  weft::EncapParams ep;
  ep.format = (data[0] & 1) ? weft::Format::vxlan : weft::Format::udp;
  size_t headroom = weft::encap_len(ep.format) + ((data[0] >> 1) & 7);
  bool needs_csum = (data[0] & 0x10) != 0;
  ep.vni = fuzz::be24(data + 1);
  std::memcpy(ep.local_mac.data(), data + 4, 6);
  weft::Mac peer_mac;
  std::memcpy(peer_mac.data(), data + 10, 6);
  size_t csum_start = fuzz::be16(data + 16);
  size_t csum_offset = fuzz::be16(data + 18);
  uint32_t bind_ip = fuzz::be32(data + 20);
  uint16_t port = fuzz::be16(data + 24);
  size_t len = size - kPrefix;

  // Exactly headroom + len bytes, as ASan sees them.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[headroom + len]);
  std::memset(buf.get(), 0, headroom);
  std::memcpy(buf.get() + headroom, data + kPrefix, len);
  uint8_t* pkt = buf.get() + headroom;

  if (needs_csum) {
    std::vector<uint8_t> before(pkt, pkt + len);
    bool fits = csum_start + csum_offset + 2 <= len;
    bool done = weft::complete_checksum(pkt, len, csum_start, csum_offset);
    FUZZ_CHECK(done == fits);
    size_t field = csum_start + csum_offset;
    for (size_t i = 0; i < len; i++) {
      if (!done || i < field || i >= field + 2) FUZZ_CHECK(pkt[i] == before[i]);
    }
    // The field held the pseudo-header sum P; completed, the range sums
    // with P to 0xffff (for an even offset, as every real one is).
    if (done && csum_offset % 2 == 0) {
      uint32_t p = fuzz::be16(before.data() + field);
      FUZZ_CHECK(fuzz::ones_fold(fuzz::ones_sum(pkt + csum_start, len - csum_start) + p) == 0xffff);
    }
    if (!done) return 0;  // the engine drops it
  }

  // A super-packet meets the loop check before anything else looks at it.
  bool own = weft::is_own_datagram(pkt, len, bind_ip, port);
  FUZZ_CHECK(own == own_datagram(pkt, len, bind_ip, port));
  weft::Counter v = weft::check_tx_ipv4(pkt, len);
  FUZZ_CHECK(v == weft::Counter::tx_packets || v == weft::Counter::tx_drop_not_ipv4 ||
             v == weft::Counter::tx_drop_bad_ipv4);
  if (v != weft::Counter::tx_packets || own) return 0;  // own: tx_drop_loop
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  FUZZ_CHECK(len >= 20 && (pkt[0] >> 4) == 4 && ihl >= 20 && ihl <= len && fuzz::be16(pkt + 2) == len);

  std::vector<uint8_t> inner(pkt, pkt + len);
  bool header_ok = fuzz::ipv4_csum_ok(pkt, ihl);
  size_t off = 0, olen = 0;
  v = weft::encap(ep, peer_mac, buf.get(), headroom, len, &off, &olen);
  if (ep.format == weft::Format::udp && inner[8] <= 1) {
    FUZZ_CHECK(v == weft::Counter::tx_drop_ttl);
    return 0;
  }
  FUZZ_CHECK(v == weft::Counter::tx_packets);
  FUZZ_CHECK(off + olen == headroom + len && off + weft::encap_len(ep.format) == headroom);

  if (ep.format == weft::Format::udp) {
    // A router's TTL decrement: only TTL and the header checksum change,
    // and a valid header checksum stays valid (RFC 1624).
    FUZZ_CHECK(pkt[8] == inner[8] - 1);
    for (size_t i = 0; i < len; i++) {
      if (i != 8 && i != 10 && i != 11) FUZZ_CHECK(pkt[i] == inner[i]);
    }
    if (header_ok) FUZZ_CHECK(fuzz::ipv4_csum_ok(pkt, ihl));
  } else {
    FUZZ_CHECK(std::memcmp(pkt, inner.data(), len) == 0);  // the payload is never touched
  }

  // The peer's decap takes it back whole.
  weft::DecapParams dp;
  dp.format = ep.format;
  dp.vni = ep.vni & weft::kVniMax;
  dp.local_mac = peer_mac;
  dp.max_inner = 65535;
  weft::DecapResult r = weft::decap(dp, buf.get() + off, olen);
  FUZZ_CHECK(r.verdict == weft::Counter::rx_packets);
  FUZZ_CHECK(off + r.inner_off == headroom && r.inner_len == len);
  if (ep.format == weft::Format::vxlan) {
    const uint8_t* eth = buf.get() + off + weft::kVxlanHeader;
    FUZZ_CHECK(std::memcmp(eth + 6, ep.local_mac.data(), 6) == 0);
  }
  return 0;
}
