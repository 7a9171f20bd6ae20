#include "core/offload.h"

#include <algorithm>
#include <cstring>

#include "core/checksum.h"
#include "core/encap.h"
#include "core/packet.h"

namespace weft {

namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpAck = 0x10, kTcpCwr = 0x80;

uint16_t load_host16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void store_host16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

uint32_t pseudo_sum(const uint8_t* ip, uint8_t proto, size_t l4_len) {
  return csum_partial(ip + 12, 8) + proto + static_cast<uint32_t>(l4_len);
}

void set_ipv4_checksum(uint8_t* ip, size_t ihl) {
  store_be16(ip + 10, 0);
  store_be16(ip + 10, inet_checksum(ip, ihl));
}

// Full TCP/UDP checksum of a packet whose IPv4 and L4 headers (hdr bytes)
// are at ip and whose payload (payload_len bytes) is at payload: right
// behind the headers, or elsewhere (a segment sent as header + iovec).
void set_l4_checksum(uint8_t* ip, size_t ihl, size_t hdr, uint8_t proto, const uint8_t* payload, size_t payload_len) {
  uint8_t* l4 = ip + ihl;
  size_t field = l4_checksum_offset(proto);
  size_t l4_len = hdr - ihl + payload_len;
  store_be16(l4 + field, 0);
  // hdr is even (IHL and TCP data offset count 4-byte words, UDP's is 8), so
  // the payload's sum lines up with the words of the whole.
  uint32_t sum = csum_partial(payload, payload_len, csum_partial(l4, hdr - ihl, pseudo_sum(ip, proto, l4_len)));
  uint16_t c = static_cast<uint16_t>(~csum_fold(sum));
  if (proto == kProtoUdp && c == 0) c = 0xffff;  // 0 means "no checksum" for UDP
  store_be16(l4 + field, c);
}

}  // namespace

VnetHdr read_vnet_hdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.hdr_len = load_host16(p + 2);
  h.gso_size = load_host16(p + 4);
  h.csum_start = load_host16(p + 6);
  h.csum_offset = load_host16(p + 8);
  return h;
}

void write_vnet_hdr(uint8_t* p, const VnetHdr& h) {
  p[0] = h.flags;
  p[1] = h.gso_type;
  store_host16(p + 2, h.hdr_len);
  store_host16(p + 4, h.gso_size);
  store_host16(p + 6, h.csum_start);
  store_host16(p + 8, h.csum_offset);
}

bool complete_checksum(uint8_t* pkt, size_t len, size_t csum_start, size_t csum_offset) {
  if (csum_start > len || csum_offset > len - csum_start || len - csum_start - csum_offset < 2) return false;
  uint8_t* field = pkt + csum_start + csum_offset;
  uint16_t c = static_cast<uint16_t>(~csum_fold(csum_partial(pkt + csum_start, len - csum_start)));
  store_be16(field, c == 0 ? 0xffff : c);
  return true;
}

L4Csum inspect_l4_checksum(const uint8_t* pkt, size_t len, bool verify) {
  uint8_t proto = pkt[9];
  if (proto != kProtoTcp && proto != kProtoUdp) return L4Csum::none;
  // A fragment's sum covers the reassembled datagram; the kernel checks it then.
  if ((load_be16(pkt + 6) & 0x3fff) != 0) return L4Csum::none;
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (len < ihl + (proto == kProtoTcp ? 20 : kUdpHeader)) return L4Csum::none;
  size_t l4_len = len - ihl;
  if (proto == kProtoUdp) {
    // The kernel sums (and trims to) the UDP length; one it would refuse is its to refuse.
    size_t ulen = load_be16(pkt + ihl + 4);
    if (ulen < kUdpHeader || ulen > l4_len) return L4Csum::none;
    l4_len = ulen;
  }
  uint16_t field = load_be16(pkt + ihl + l4_checksum_offset(proto));
  if (proto == kProtoUdp && field == 0) return L4Csum::valid;  // sent without a checksum
  uint32_t pseudo = pseudo_sum(pkt, proto, l4_len);
  bool partial_pattern = field == csum_fold(pseudo);
  if (!partial_pattern && !verify) return L4Csum::unchecked;
  if (csum_fold(csum_partial(pkt + ihl, l4_len, pseudo)) == 0xffff) return L4Csum::valid;
  return partial_pattern ? L4Csum::partial : L4Csum::bad;
}

namespace {

// gso_segment and gso_segment_headers: one cut, two layouts. Packet i's
// headers go to out + i * stride + lead; with copy, its payload follows
// them there, else it stays in pkt (stride then spans lead + headers only).
Segments segment(const VnetHdr& h, const uint8_t* pkt, size_t len, uint8_t* out, size_t out_cap, size_t lead, bool copy) {
  Segments s;
  s.verdict = Counter::tx_drop_bad_gso;
  uint8_t type = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
  if (len < kIpv4MinHeader || (pkt[0] >> 4) != 4) return s;
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (ihl < kIpv4MinHeader || ihl > len || load_be16(pkt + 2) != len) return s;
  uint8_t proto = pkt[9];
  size_t l4_hdr;
  if (type == kGsoTcpV4 && proto == kProtoTcp) {
    if (len - ihl < 20) return s;
    l4_hdr = static_cast<size_t>(pkt[ihl + 12] >> 4) * 4;
    if (l4_hdr < 20 || l4_hdr > len - ihl) return s;
  } else if (type == kGsoUdpL4 && proto == kProtoUdp) {
    l4_hdr = kUdpHeader;
    if (len - ihl < l4_hdr) return s;
  } else {
    return s;
  }
  size_t hdr = ihl + l4_hdr;
  size_t payload = len - hdr;
  size_t mss = h.gso_size;
  if (mss == 0 || payload == 0) return s;
  size_t count = (payload + mss - 1) / mss;
  s.hdr_len = hdr;
  s.seg_len = hdr + std::min(mss, payload);
  s.last_len = hdr + (payload - (count - 1) * mss);
  s.stride = lead + (copy ? s.seg_len : hdr);
  // The last block ends at (count - 1) * stride + lead + its length.
  size_t last_block = lead + (copy ? s.last_len : hdr);
  if (count > out_cap / s.stride + 1 || (count - 1) * s.stride + last_block > out_cap) return s;

  uint16_t id = load_be16(pkt + 4);
  uint32_t seq = proto == kProtoTcp ? load_be32(pkt + ihl + 4) : 0;
  for (size_t i = 0; i < count; i++) {
    uint8_t* seg = out + i * s.stride + lead;
    size_t chunk = i + 1 < count ? mss : payload - i * mss;
    const uint8_t* data = pkt + hdr + i * mss;
    std::memcpy(seg, pkt, hdr);
    if (copy) {
      std::memcpy(seg + hdr, data, chunk);
      data = seg + hdr;
    }
    store_be16(seg + 2, static_cast<uint16_t>(hdr + chunk));
    store_be16(seg + 4, static_cast<uint16_t>(id + i));
    set_ipv4_checksum(seg, ihl);
    uint8_t* l4 = seg + ihl;
    if (proto == kProtoTcp) {
      store_be32(l4 + 4, seq + static_cast<uint32_t>(i * mss));
      // FIN and PSH belong to the last segment, CWR to the first (RFC 3168).
      if (i + 1 < count) l4[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
      if (i > 0) l4[13] &= static_cast<uint8_t>(~kTcpCwr);
    } else {
      store_be16(l4 + 4, static_cast<uint16_t>(kUdpHeader + chunk));
    }
    set_l4_checksum(seg, ihl, hdr, proto, data, chunk);
  }
  s.count = static_cast<unsigned>(count);
  s.verdict = Counter::tx_packets;
  return s;
}

}  // namespace

Segments gso_segment(const VnetHdr& h, const uint8_t* pkt, size_t len, uint8_t* out, size_t out_cap, size_t lead) {
  return segment(h, pkt, len, out, out_cap, lead, true);
}

Segments gso_segment_headers(const VnetHdr& h, const uint8_t* pkt, size_t len, uint8_t* hdrs, size_t hdrs_cap, size_t lead) {
  return segment(h, pkt, len, hdrs, hdrs_cap, lead, false);
}

void complete_l4_checksum(uint8_t* pkt, size_t len) {
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  // UDP sums its own length (inspect_l4_checksum checked it fits), not what may pad it.
  size_t end = pkt[9] == kProtoUdp ? ihl + load_be16(pkt + ihl + 4) : len;
  complete_checksum(pkt, end, ihl, l4_checksum_offset(pkt[9]));
}

// --- coalescing ------------------------------------------------------------

namespace {

// The TCP segment of a validated IPv4 packet, if it is one we may merge:
// no IP options, not a fragment, ACK (and maybe PSH) only, some payload.
struct TcpView {
  bool tcp = false;       // a TCP packet whose ports we can read
  bool mergeable = false;
  size_t hdr_len = 0;     // IPv4 + TCP
  size_t payload = 0;
  uint32_t seq = 0;
  uint8_t flags = 0;
};

TcpView view_tcp(const uint8_t* p, size_t len) {
  TcpView v;
  size_t ihl = size_t{p[0] & 0x0fu} * 4;
  if (p[9] != kProtoTcp || len < ihl + 20) return v;
  bool fragment = (load_be16(p + 6) & 0x3fff) != 0;  // MF or an offset
  if (fragment) return v;
  v.tcp = true;
  size_t doff = static_cast<size_t>(p[ihl + 12] >> 4) * 4;
  if (doff < 20 || ihl + doff > len) return v;
  v.hdr_len = ihl + doff;
  v.payload = len - v.hdr_len;
  v.seq = load_be32(p + ihl + 4);
  v.flags = p[ihl + 13];
  v.mergeable = ihl == kIpv4MinHeader && (v.flags == kTcpAck || v.flags == (kTcpAck | kTcpPsh)) && v.payload > 0;
  return v;
}

// Same flow: addresses and ports.
bool same_flow(const uint8_t* a, const uint8_t* b) {
  size_t ia = size_t{a[0] & 0x0fu} * 4, ib = size_t{b[0] & 0x0fu} * 4;
  return std::memcmp(a + 12, b + 12, 8) == 0 && std::memcmp(a + ia, b + ib, 4) == 0;
}

}  // namespace

void Coalescer::reset() {
  for (size_t i = 0; i < open_; i++) flows_[i].payloads.clear();
  open_ = 0;
  writes_.clear();
  iovs_.clear();
  headers_.clear();
  header_iovs_.clear();
}

int Coalescer::find_flow(const uint8_t* pkt) const {
  for (size_t i = 0; i < open_; i++) {
    if (same_flow(flows_[i].first, pkt)) return static_cast<int>(i);
  }
  return -1;
}

void Coalescer::emit_passthrough(const uint8_t* pkt, size_t len, bool partial) {
  TunWrite w;
  if (partial) {
    VnetHdr vh;
    vh.flags = kVnetFlagNeedsCsum;
    vh.csum_start = static_cast<uint16_t>(size_t{pkt[0] & 0x0fu} * 4);
    vh.csum_offset = static_cast<uint16_t>(l4_checksum_offset(pkt[9]));
    vh.hdr_len = static_cast<uint16_t>(vh.csum_start + vh.csum_offset + 2);
    write_vnet_hdr(w.vnet, vh);
  }
  w.first_iov = iovs_.size();
  w.iov_count = 1;
  w.bytes = len;
  iovs_.push_back({const_cast<uint8_t*>(pkt), len});
  writes_.push_back(w);
}

void Coalescer::emit_tso(const uint8_t* first, size_t hdr_len, size_t total, uint16_t gso_size, bool psh,
                         const iovec* payloads, size_t count, unsigned segments, size_t bytes) {
  // The headers of the first segment, with the total length, PSH if the
  // last had it, and the TCP checksum left partial (pseudo-header sum) for
  // the kernel to finish, as NEEDS_CSUM says.
  size_t ihl = size_t{first[0] & 0x0fu} * 4;
  size_t off = headers_.size();
  headers_.insert(headers_.end(), first, first + hdr_len);
  uint8_t* h = headers_.data() + off;
  store_be16(h + 2, static_cast<uint16_t>(total));
  set_ipv4_checksum(h, ihl);
  uint8_t* tcp = h + ihl;
  if (psh) tcp[13] |= kTcpPsh;
  store_be16(tcp + 16, csum_fold(pseudo_sum(h, kProtoTcp, total - ihl)));

  TunWrite w;
  VnetHdr vh;
  vh.flags = kVnetFlagNeedsCsum;
  // CWR belongs to the first segment only; ECN tells the kernel so.
  vh.gso_type = static_cast<uint8_t>(kGsoTcpV4 | ((tcp[13] & kTcpCwr) ? kGsoEcn : 0));
  vh.hdr_len = static_cast<uint16_t>(hdr_len);
  vh.gso_size = gso_size;
  vh.csum_start = static_cast<uint16_t>(ihl);
  vh.csum_offset = 16;
  write_vnet_hdr(w.vnet, vh);
  w.first_iov = iovs_.size();
  w.iov_count = 1 + count;
  w.bytes = bytes;
  w.segments = segments;
  header_iovs_.emplace_back(iovs_.size(), off);
  iovs_.push_back({nullptr, hdr_len});
  iovs_.insert(iovs_.end(), payloads, payloads + count);
  writes_.push_back(w);
}

void Coalescer::emit_flow(size_t i) {
  Flow& f = flows_[i];
  unsigned segments = static_cast<unsigned>(f.payloads.size());
  if (segments == 1) {
    emit_passthrough(f.first, f.hdr_len + f.total_payload, f.first_partial);
  } else {
    emit_tso(f.first, f.hdr_len, f.hdr_len + f.total_payload, static_cast<uint16_t>(f.seg_payload), f.psh,
             f.payloads.data(), f.payloads.size(), segments, segments * f.hdr_len + f.total_payload);
  }
  // Free slot i: move the last open flow into it (payload vectors swap, so
  // their capacity stays with the slots).
  f.payloads.clear();
  if (i + 1 != open_) std::swap(flows_[i], flows_[open_ - 1]);
  open_--;
}

L4Csum Coalescer::add(const uint8_t* pkt, size_t len) {
  TcpView v = view_tcp(pkt, len);
  // Only a segment that could join a flow is summed here; the kernel sums
  // everything else itself.
  L4Csum csum = inspect_l4_checksum(pkt, len, v.mergeable);
  bool partial = csum == L4Csum::partial;
  if (csum != L4Csum::valid && !partial) v.mergeable = false;
  int at = v.tcp ? find_flow(pkt) : -1;
  if (!v.mergeable) {
    if (at >= 0) emit_flow(static_cast<size_t>(at));  // keep the flow in order
    emit_passthrough(pkt, len, partial);
    return csum;
  }
  if (at >= 0) {
    Flow& f = flows_[at];
    const uint8_t* first = f.first;
    bool fits = !f.closed && v.seq == f.next_seq && v.hdr_len == f.hdr_len && v.payload <= f.seg_payload &&
                f.payloads.size() < kMaxSegments && f.hdr_len + f.total_payload + v.payload <= 65535 &&
                pkt[1] == first[1] && pkt[8] == first[8] &&                   // TOS, TTL
                load_be16(pkt + 6) == load_be16(first + 6) &&                 // DF
                std::memcmp(pkt + 28, first + 28, 4) == 0 &&                  // ACK number
                std::memcmp(pkt + 34, first + 34, 2) == 0 &&                  // window
                std::memcmp(pkt + 40, first + 40, f.hdr_len - 40) == 0;       // options
    if (fits) {
      f.payloads.push_back({const_cast<uint8_t*>(pkt + v.hdr_len), v.payload});
      f.total_payload += v.payload;
      f.next_seq += static_cast<uint32_t>(v.payload);
      f.psh = (v.flags & kTcpPsh) != 0;
      f.closed = f.psh || v.payload < f.seg_payload;
      return csum;
    }
    emit_flow(static_cast<size_t>(at));
  }
  if (open_ == kMaxOpenFlows) {
    size_t oldest = 0;
    for (size_t i = 1; i < open_; i++) {
      if (flows_[i].opened < flows_[oldest].opened) oldest = i;
    }
    emit_flow(oldest);
  }
  Flow& f = flows_[open_++];
  f.first = pkt;
  f.hdr_len = v.hdr_len;
  f.seg_payload = v.payload;
  f.total_payload = v.payload;
  f.next_seq = v.seq + static_cast<uint32_t>(v.payload);
  f.psh = (v.flags & kTcpPsh) != 0;
  f.closed = f.psh;
  f.first_partial = partial;
  f.opened = opened_++;
  f.payloads.clear();
  f.payloads.push_back({const_cast<uint8_t*>(pkt + v.hdr_len), v.payload});
  return csum;
}

L4Csum Coalescer::add_super(const uint8_t* pkt, size_t len, size_t max_inner) {
  L4Csum csum = inspect_l4_checksum(pkt, len, true);
  if (csum != L4Csum::valid && csum != L4Csum::partial) return csum;
  TcpView v = view_tcp(pkt, len);
  if (!v.tcp || v.hdr_len >= max_inner || v.payload == 0) return L4Csum::bad;  // decap promised otherwise
  int at = find_flow(pkt);
  if (at >= 0) emit_flow(static_cast<size_t>(at));  // keep the flow in order
  iovec payload{const_cast<uint8_t*>(pkt + v.hdr_len), v.payload};
  emit_tso(pkt, v.hdr_len, len, static_cast<uint16_t>(max_inner - v.hdr_len), false, &payload, 1, 1, len);
  return csum;
}

void Coalescer::finish() {
  while (open_ > 0) {
    size_t oldest = 0;
    for (size_t i = 1; i < open_; i++) {
      if (flows_[i].opened < flows_[oldest].opened) oldest = i;
    }
    emit_flow(oldest);
  }
  for (auto& [iov, off] : header_iovs_) iovs_[iov].iov_base = headers_.data() + off;
}

}  // namespace weft
