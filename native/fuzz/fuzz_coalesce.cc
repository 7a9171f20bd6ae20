// weft::Coalescer: the decapsulated packets of a receive batch, merged
// into TSO super-packets for the TUN. The packets come from the underlay,
// so every header field (and every checksum) is the sender's choice.
//
// Input: a run of records, each  op (1 byte) | n (2 bytes, BE) | ...
//   op & 3 == 0  raw: the next n bytes are one packet.
//   op & 3 == 1  next segment: the previous packet's IPv4+TCP headers with
//                the sequence number advanced past its payload, then n
//                payload bytes of a fill pattern, and a right TCP checksum,
//                so runs of mergeable segments, up to the 64 segment and
//                64 KB limits, cost 3 bytes a packet.
//                op & 4 sets PSH, op & 8 skips one sequence number,
//                op & 0x10 corrupts a payload byte after the checksum (as
//                the underlay may: VXLAN has no outer checksum),
//                op & 0x20 leaves the checksum partial (pseudo-header sum),
//                as a kernel peer on a veth sends it.
//   op & 3 >= 2  the previous packet again (a duplicate or retransmit).
//   op & 0x80    after this packet, end the batch (finish, check, reset);
//                a batch also ends at 256 packets, and an input stops
//                after building 256 KB.
// Each packet goes through weft::decap (udp format, TUN MTU kMaxInner)
// first, as the engine does: one it takes whole as a TCP super-packet goes
// to add_super, the rest to add. Every packet lives in its own allocation
// of exactly its length, so a read past any one of them is an ASan report.
//
// Checked at every finish(): each output is <= 65535 bytes and <= 64
// segments; every packet added comes out exactly once, either whole or as
// the payload of a super-packet, except a super-packet add_super refused
// (its checksum neither right nor partial), which never comes out; a
// super-packet is one flow's consecutive sequence numbers with all
// payloads of gso_size but the last, and only segments whose checksum is
// right or partial are in one; a packet written whole carries NEEDS_CSUM
// exactly when its checksum is partial; the TCP packets of one flow come
// out in the order they went in; what add returns agrees with the checksum.
#include <map>
#include <tuple>
#include <vector>

#include "core/encap.h"
#include "core/offload.h"
#include "fuzz/fuzz_util.h"

namespace {

// Bounds on what one input may build, so a short input of "n = 65535"
// records cannot ask for gigabytes and each run stays fast. Merging only
// cares about the 64-segment and 64 KB limits, which this still reaches.
constexpr size_t kMaxBatch = 256;
constexpr size_t kMaxBuilt = 256u << 10;
constexpr size_t kMaxInner = 1500;  // the TUN MTU decap and add_super are given

struct Held {
  std::unique_ptr<uint8_t[]> bytes;
  size_t len = 0;
  fuzz::Csum csum = fuzz::Csum::none;  // what its checksum is, read apart from the core
  bool super = false;                  // decap took it whole: it went to add_super
  bool refused = false;                // add_super would not take it
};

size_t tcp_hdr_len(const uint8_t* p, size_t len) {  // 0: not a TCP packet we can read
  size_t ihl = size_t{p[0] & 0x0fu} * 4;
  if (p[9] != 6 || len < ihl + 20) return 0;
  size_t doff = static_cast<size_t>(p[ihl + 12] >> 4) * 4;
  if (doff < 20 || ihl + doff > len) return 0;
  return ihl + doff;
}

bool is_fragment(const uint8_t* p) { return (fuzz::be16(p + 6) & 0x3fff) != 0; }

// Addresses and ports: what the coalescer calls a flow.
using FlowKey = std::tuple<uint32_t, uint32_t, uint32_t>;
FlowKey flow_key(const uint8_t* p) {
  size_t ihl = size_t{p[0] & 0x0fu} * 4;
  return {fuzz::be32(p + 12), fuzz::be32(p + 16), fuzz::be32(p + ihl)};
}

void check_batch(const weft::Coalescer& c, const std::vector<Held>& batch) {
  const auto& writes = c.writes();
  const auto& iovs = c.iovs();
  std::vector<int> seen(batch.size(), 0);
  std::map<FlowKey, size_t> last_of_flow;  // index of the flow's last packet written
  unsigned segments = 0;
  size_t next_iov = 0;

  // Which packet an iovec is: whole (payload_only false) or its payload.
  std::map<const uint8_t*, size_t> starts, payloads;
  for (size_t k = 0; k < batch.size(); k++) {
    const uint8_t* p = batch[k].bytes.get();
    starts.emplace(p, k);
    if (size_t hl = tcp_hdr_len(p, batch[k].len)) payloads.emplace(p + hl, k);
  }
  auto which = [&](const iovec& v, bool payload_only) -> size_t {
    const auto& index = payload_only ? payloads : starts;
    auto it = index.find(static_cast<const uint8_t*>(v.iov_base));
    if (it == index.end()) return SIZE_MAX;
    size_t k = it->second;
    const uint8_t* p = batch[k].bytes.get();
    size_t skip = static_cast<size_t>(static_cast<const uint8_t*>(v.iov_base) - p);
    return v.iov_len == batch[k].len - skip ? k : SIZE_MAX;
  };
  auto in_order = [&](size_t k) {
    const uint8_t* p = batch[k].bytes.get();
    if (tcp_hdr_len(p, batch[k].len) == 0 || is_fragment(p)) return;
    auto [it, fresh] = last_of_flow.emplace(flow_key(p), k);
    if (!fresh) {
      FUZZ_CHECK(it->second < k);  // a flow's packets keep their order
      it->second = k;
    }
  };

  for (const weft::TunWrite& w : writes) {
    FUZZ_CHECK(w.first_iov == next_iov);  // outputs cover iovs() in order
    FUZZ_CHECK(w.iov_count >= 1 && w.first_iov + w.iov_count <= iovs.size());
    next_iov = w.first_iov + w.iov_count;
    FUZZ_CHECK(w.segments >= 1 && w.segments <= weft::kMaxSegments);
    segments += w.segments;
    size_t total = 0;
    for (size_t i = w.first_iov; i < next_iov; i++) {
      // Reading every byte makes ASan check that the iovec is live memory
      // (a header left pointing into moved storage is a use-after-free).
      fuzz::touch(static_cast<const uint8_t*>(iovs[i].iov_base), iovs[i].iov_len);
      total += iovs[i].iov_len;
    }
    FUZZ_CHECK(total <= 65535);
    weft::VnetHdr vh = weft::read_vnet_hdr(w.vnet);

    if (w.segments == 1 && w.iov_count == 1) {
      size_t k = which(iovs[w.first_iov], false);
      FUZZ_CHECK(k != SIZE_MAX);  // a held packet, whole
      FUZZ_CHECK(!batch[k].super);
      FUZZ_CHECK(w.bytes == batch[k].len);
      FUZZ_CHECK(vh.gso_type == weft::kGsoNone);
      if (batch[k].csum == fuzz::Csum::partial) {
        // The kernel finishes it: NEEDS_CSUM at the packet's own field.
        const uint8_t* p = batch[k].bytes.get();
        size_t ihl = size_t{p[0] & 0x0fu} * 4;
        FUZZ_CHECK(vh.flags == weft::kVnetFlagNeedsCsum && vh.csum_start == ihl);
        FUZZ_CHECK(vh.csum_offset == (p[9] == 6 ? 16 : 6) && vh.hdr_len == ihl + vh.csum_offset + 2);
      } else {
        FUZZ_CHECK(vh.flags == 0 && vh.csum_start == 0 && vh.csum_offset == 0);
      }
      seen[k]++;
      in_order(k);
      continue;
    }

    // A super-packet: our header, then the segments' payloads.
    FUZZ_CHECK(w.iov_count == 1 + w.segments);
    const iovec& hv = iovs[w.first_iov];
    const uint8_t* h = static_cast<const uint8_t*>(hv.iov_base);
    size_t ihl = size_t{h[0] & 0x0fu} * 4;
    FUZZ_CHECK(which(hv, false) == SIZE_MAX);  // in the header storage, not a packet
    FUZZ_CHECK(hv.iov_len >= ihl + 20 && hv.iov_len <= 120 && (h[0] >> 4) == 4 && ihl >= 20);
    FUZZ_CHECK(fuzz::be16(h + 2) == total && fuzz::ipv4_csum_ok(h, ihl));
    FUZZ_CHECK((vh.gso_type & ~weft::kGsoEcn) == weft::kGsoTcpV4 && vh.flags == weft::kVnetFlagNeedsCsum);
    FUZZ_CHECK(((vh.gso_type & weft::kGsoEcn) != 0) == ((h[ihl + 13] & 0x80) != 0));  // CWR
    FUZZ_CHECK(vh.hdr_len == hv.iov_len && vh.csum_start == ihl && vh.csum_offset == 16);
    FUZZ_CHECK(vh.gso_size > 0);
    // NEEDS_CSUM: the field holds the pseudo-header sum for the kernel to finish.
    uint32_t pseudo = fuzz::ones_sum(h + 12, 8) + 6 + static_cast<uint32_t>(total - ihl);
    FUZZ_CHECK(fuzz::be16(h + ihl + 16) == fuzz::ones_fold(pseudo));

    if (w.segments == 1) {
      // A super-packet decap took whole, cut to the TUN's MTU by the TUN.
      FUZZ_CHECK(w.iov_count == 2);
      size_t k = which(iovs[w.first_iov + 1], true);
      FUZZ_CHECK(k != SIZE_MAX && batch[k].super && !batch[k].refused);
      FUZZ_CHECK(batch[k].csum == fuzz::Csum::valid || batch[k].csum == fuzz::Csum::partial);
      const uint8_t* p = batch[k].bytes.get();
      FUZZ_CHECK(hv.iov_len == tcp_hdr_len(p, batch[k].len) && total == batch[k].len);
      FUZZ_CHECK(vh.gso_size == kMaxInner - hv.iov_len);
      // Our header is the packet's own but for the total length and checksums.
      FUZZ_CHECK(h[1] == p[1] && std::memcmp(h + 4, p + 4, 6) == 0);
      FUZZ_CHECK(std::memcmp(h + 12, p + 12, ihl + 16 - 12) == 0);  // addresses, options, TCP up to its checksum
      FUZZ_CHECK(std::memcmp(h + ihl + 18, p + ihl + 18, hv.iov_len - ihl - 18) == 0);
      FUZZ_CHECK(w.bytes == batch[k].len);
      seen[k]++;
      in_order(k);
      continue;
    }
    FUZZ_CHECK(ihl == 20);
    size_t first = SIZE_MAX, prev = SIZE_MAX, bytes = 0;
    for (size_t i = w.first_iov + 1; i < next_iov; i++) {
      size_t k = which(iovs[i], true);
      FUZZ_CHECK(k != SIZE_MAX);  // the payload of a held packet
      const uint8_t* p = batch[k].bytes.get();
      size_t hl = tcp_hdr_len(p, batch[k].len);
      FUZZ_CHECK(hl == hv.iov_len);
      bool last = i + 1 == next_iov;
      FUZZ_CHECK(last ? iovs[i].iov_len <= vh.gso_size : iovs[i].iov_len == vh.gso_size);
      // Like GRO: only segments whose checksum holds (or is partial) merge.
      FUZZ_CHECK(!batch[k].super);
      FUZZ_CHECK(batch[k].csum == fuzz::Csum::valid || batch[k].csum == fuzz::Csum::partial);
      if (first == SIZE_MAX) {
        first = k;
        // Our header is the first segment's but for length, checksums and PSH.
        FUZZ_CHECK(h[1] == p[1] && std::memcmp(h + 4, p + 4, 6) == 0 && std::memcmp(h + 12, p + 12, 21) == 0);
        FUZZ_CHECK((h[33] & ~0x08) == (p[33] & ~0x08));
        FUZZ_CHECK(std::memcmp(h + 34, p + 34, 2) == 0 && std::memcmp(h + 38, p + 38, hl - 38) == 0);
      } else {
        const uint8_t* q = batch[prev].bytes.get();
        size_t ql = tcp_hdr_len(q, batch[prev].len);
        FUZZ_CHECK(flow_key(p) == flow_key(q));
        FUZZ_CHECK(fuzz::be32(p + 24) == fuzz::be32(q + 24) + static_cast<uint32_t>(batch[prev].len - ql));
        FUZZ_CHECK(std::memcmp(p + 28, q + 28, 4) == 0);  // same ACK
      }
      bytes += batch[k].len;
      prev = k;
      seen[k]++;
      in_order(k);
    }
    FUZZ_CHECK(w.bytes == bytes);
  }
  FUZZ_CHECK(next_iov == iovs.size());
  size_t refused = 0;
  for (size_t k = 0; k < batch.size(); k++) {
    FUZZ_CHECK(seen[k] == (batch[k].refused ? 0 : 1));
    refused += batch[k].refused;
  }
  FUZZ_CHECK(segments + refused == batch.size());
}

// What add/add_super returned must match the checksum as read apart.
void check_returned(const Held& held, weft::L4Csum got) {
  using fuzz::Csum;
  switch (got) {
    case weft::L4Csum::none: FUZZ_CHECK(held.csum == Csum::none); break;
    case weft::L4Csum::unchecked: FUZZ_CHECK(!held.super && (held.csum == Csum::valid || held.csum == Csum::bad)); break;
    case weft::L4Csum::valid: FUZZ_CHECK(held.csum == Csum::valid); break;
    case weft::L4Csum::partial: FUZZ_CHECK(held.csum == Csum::partial); break;
    case weft::L4Csum::bad: FUZZ_CHECK(held.csum == Csum::bad || held.super); break;
  }
}

void put_be16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weft::Coalescer c;
  std::vector<Held> batch;
  std::vector<uint8_t> prev;  // the previous record's packet, as built
  size_t at = 0, built = 0;
  while (at + 3 <= size && built < kMaxBuilt) {
    uint8_t op = data[at];
    size_t n = fuzz::be16(data + at + 1);
    at += 3;
    std::vector<uint8_t> pkt;
    switch (op & 3) {
      case 0: {
        size_t take = std::min(n, size - at);
        pkt.assign(data + at, data + at + take);
        at += take;
        break;
      }
      case 1: {
        size_t hl = prev.size() >= 20 ? tcp_hdr_len(prev.data(), prev.size()) : 0;
        if (hl == 0) continue;
        n = std::min(n, 65535 - hl);
        pkt.assign(prev.begin(), prev.begin() + static_cast<long>(hl));
        size_t prev_payload = prev.size() - hl;
        size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
        uint32_t seq = fuzz::be32(pkt.data() + ihl + 4) + static_cast<uint32_t>(prev_payload) + ((op & 8) ? 1 : 0);
        for (int b = 0; b < 4; b++) pkt[ihl + 4 + b] = static_cast<uint8_t>(seq >> (24 - 8 * b));
        if (op & 4) pkt[ihl + 13] |= 0x08;
        pkt.resize(hl + n);
        for (size_t i = 0; i < n; i++) pkt[hl + i] = static_cast<uint8_t>(seq + i);
        put_be16(pkt, 2, static_cast<uint16_t>(pkt.size()));
        uint32_t pseudo = fuzz::ones_sum(pkt.data() + 12, 8) + 6 + static_cast<uint32_t>(pkt.size() - ihl);
        put_be16(pkt, ihl + 16, 0);
        put_be16(pkt, ihl + 16, (op & 0x20) ? fuzz::ones_fold(pseudo)
                                            : static_cast<uint16_t>(~fuzz::ones_fold(fuzz::ones_sum(pkt.data() + ihl, pkt.size() - ihl, pseudo))));
        if ((op & 0x10) && n > 0) pkt[hl + n / 2] ^= 0x40;
        break;
      }
      default:
        pkt = prev;
        break;
    }
    prev = pkt;
    built += pkt.size();
    weft::DecapParams dp;
    dp.format = weft::Format::udp;
    dp.max_inner = kMaxInner;
    weft::DecapResult r = weft::decap(dp, pkt.data(), pkt.size());
    if (r.verdict == weft::Counter::rx_packets) {
      Held held;
      held.len = r.inner_len;
      held.bytes.reset(new uint8_t[r.inner_len]);
      std::memcpy(held.bytes.get(), pkt.data(), r.inner_len);
      held.csum = fuzz::l4_csum_class(held.bytes.get(), held.len);
      held.super = r.super_packet;
      weft::L4Csum got = held.super ? c.add_super(held.bytes.get(), held.len, kMaxInner)
                                    : c.add(held.bytes.get(), held.len);
      check_returned(held, got);
      held.refused = held.super && got != weft::L4Csum::valid && got != weft::L4Csum::partial;
      batch.push_back(std::move(held));
    }
    if ((op & 0x80) || batch.size() == kMaxBatch) {
      c.finish();
      check_batch(c, batch);
      c.reset();
      batch.clear();
    }
  }
  c.finish();
  check_batch(c, batch);
  return 0;
}
