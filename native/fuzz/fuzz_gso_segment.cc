// weft::gso_segment: a super-packet from the TUN (virtio-net header + IPv4
// TCP/UDP of up to 64 KB) cut into wire packets in a caller's buffer. The
// kernel is the usual author of these bytes, but any process that can write
// to the TUN is too, so nothing in the header is trusted.
//
// Input: virtio_net_hdr (10 bytes, host order, as the TUN gives it)
//        | out_cap (2 bytes, BE)
//        | shape (bit 7: 0 gso_segment, 1 gso_segment_headers), lead (bits
//          1-6) and out_cap's bit 16 (bit 0)
//        | the packet.
// On success every packet (for gso_segment_headers: its header block and
// its payload in the super-packet, put together) must be a valid IPv4
// packet with right IPv4 and TCP/UDP checksums, together carrying exactly
// the original payload, and everything written must lie inside out_cap
// and every payload inside the super-packet; then each is encapsulated in
// place as the engine does, which must stay inside its lead bytes.
#include <vector>

#include "core/encap.h"
#include "core/offload.h"
#include "fuzz/fuzz_util.h"

namespace {
constexpr size_t kPrefix = weft::kVnetHdrLen + 3;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefix) return 0;
  weft::VnetHdr h = weft::read_vnet_hdr(data);
  size_t out_cap = fuzz::be16(data + 10) | (size_t{data[12] & 1u} << 16);
  size_t lead = (data[12] >> 1) & 0x3f;
  bool headers_only = (data[12] & 0x80) != 0;
  const uint8_t* pkt = data + kPrefix;
  size_t len = size - kPrefix;

  fuzz::Guarded out(out_cap);
  weft::Segments s = headers_only ? weft::gso_segment_headers(h, pkt, len, out.data(), out_cap, lead)
                                  : weft::gso_segment(h, pkt, len, out.data(), out_cap, lead);
  FUZZ_CHECK(out.intact());
  if (s.verdict != weft::Counter::tx_packets) {
    FUZZ_CHECK(s.verdict == weft::Counter::tx_drop_bad_gso);
    return 0;
  }

  // The input was a well-formed IPv4 TCP/UDP packet of the GSO type.
  FUZZ_CHECK(len >= 20 && (pkt[0] >> 4) == 4 && fuzz::be16(pkt + 2) == len);
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  uint8_t proto = pkt[9];
  uint8_t type = h.gso_type & static_cast<uint8_t>(~weft::kGsoEcn);
  FUZZ_CHECK((type == weft::kGsoTcpV4 && proto == 6) || (type == weft::kGsoUdpL4 && proto == 17));
  size_t l4_hdr = proto == 6 ? static_cast<size_t>(pkt[ihl + 12] >> 4) * 4 : 8;
  size_t hdr = ihl + l4_hdr;
  FUZZ_CHECK(hdr < len && h.gso_size > 0);
  size_t payload = len - hdr;

  // Layout: count packets (or header blocks) at lead + i * stride, all inside out_cap.
  FUZZ_CHECK(s.count >= 1);
  FUZZ_CHECK(s.count == (payload + h.gso_size - 1) / h.gso_size);
  FUZZ_CHECK(s.hdr_len == hdr);
  FUZZ_CHECK(s.stride == lead + (headers_only ? hdr : s.seg_len));
  FUZZ_CHECK(s.seg_len > hdr && s.seg_len <= hdr + h.gso_size);
  FUZZ_CHECK(s.last_len > hdr && s.last_len <= s.seg_len);
  FUZZ_CHECK((s.count - 1) * (s.seg_len - hdr) + (s.last_len - hdr) == payload);
  FUZZ_CHECK((s.count - 1) * s.stride + lead + (headers_only ? hdr : s.last_len) <= out_cap);

  uint32_t seq0 = proto == 6 ? fuzz::be32(pkt + ihl + 4) : 0;
  size_t at = 0;  // payload bytes checked so far
  std::vector<uint8_t> joined;
  for (unsigned i = 0; i < s.count; i++) {
    uint8_t* seg = out.data() + i * s.stride + lead;
    size_t seg_len = i + 1 < s.count ? s.seg_len : s.last_len;
    size_t chunk = seg_len - hdr;
    if (headers_only) {
      // The datagram as the kernel will see it: the block's headers, then
      // the payload iovec, which must be this segment's slice of pkt.
      iovec p = weft::segment_payload(s, pkt, i);
      const uint8_t* base = static_cast<const uint8_t*>(p.iov_base);
      FUZZ_CHECK(base == pkt + hdr + at && p.iov_len == chunk && base + p.iov_len <= pkt + len);
      joined.assign(seg, seg + hdr);
      joined.insert(joined.end(), base, base + p.iov_len);
      seg = joined.data();
    }
    FUZZ_CHECK(weft::check_tx_ipv4(seg, seg_len) == weft::Counter::tx_packets);
    FUZZ_CHECK(fuzz::be16(seg + 2) == seg_len);
    FUZZ_CHECK(fuzz::ipv4_csum_ok(seg, ihl));
    FUZZ_CHECK(fuzz::l4_csum_ok(seg, ihl, seg_len - ihl));
    // Addresses, protocol and options unchanged: only lengths, ids,
    // checksums, the sequence number and flags may differ.
    FUZZ_CHECK(std::memcmp(seg + 12, pkt + 12, 8) == 0 && seg[9] == proto && seg[0] == pkt[0]);
    FUZZ_CHECK(std::memcmp(seg + 20, pkt + 20, ihl - 20) == 0);
    FUZZ_CHECK(std::memcmp(seg + ihl, pkt + ihl, 4) == 0);  // ports
    if (proto == 6) {
      FUZZ_CHECK(fuzz::be32(seg + ihl + 4) == static_cast<uint32_t>(seq0 + at));
      FUZZ_CHECK(std::memcmp(seg + ihl + 20, pkt + ihl + 20, l4_hdr - 20) == 0);  // TCP options
    } else {
      FUZZ_CHECK(fuzz::be16(seg + ihl + 4) == 8 + chunk);
    }
    FUZZ_CHECK(std::memcmp(seg + hdr, pkt + hdr + at, chunk) == 0);
    at += chunk;
  }
  FUZZ_CHECK(at == payload);

  // The engine then encapsulates each packet in place into its lead bytes.
  weft::Format format = lead >= weft::kVxlanEncap ? weft::Format::vxlan : weft::Format::udp;
  weft::EncapParams ep;
  ep.format = format;
  for (unsigned i = 0; i < s.count; i++) {
    uint8_t* at_seg = out.data() + i * s.stride;
    size_t seg_len = i + 1 < s.count ? s.seg_len : s.last_len;
    if (format == weft::Format::udp && at_seg[lead + 8] <= 1) continue;  // the engine drops these first
    size_t off = 0, olen = 0;
    weft::Counter v = weft::encap(ep, weft::Mac{}, at_seg, lead, seg_len, &off, &olen);
    FUZZ_CHECK(v == weft::Counter::tx_packets);
    FUZZ_CHECK(off + olen == lead + seg_len && off + weft::encap_len(format) == lead);
  }
  FUZZ_CHECK(out.intact());
  return 0;
}
