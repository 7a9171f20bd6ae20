// weft::Coalescer: the decapsulated packets of a receive batch, merged
// into TSO super-packets for the TUN. The packets come from the underlay,
// so every header field is the sender's choice.
//
// Input: a run of records, each  op (1 byte) | n (2 bytes, BE) | ...
//   op & 3 == 0  raw: the next n bytes are one packet.
//   op & 3 == 1  next segment: the previous packet's IPv4+TCP headers with
//                the sequence number advanced past its payload, then n
//                payload bytes of a fill pattern (payload is opaque to the
//                coalescer), so runs of mergeable segments, up to the 64
//                segment and 64 KB limits, cost 3 bytes a packet.
//                op & 4 sets PSH, op & 8 skips one sequence number.
//   op & 3 >= 2  the previous packet again (a duplicate or retransmit).
//   op & 0x80    after this packet, end the batch (finish, check, reset);
//                a batch also ends at 256 packets, and an input stops
//                after building 256 KB.
// Each packet goes through weft::check_ipv4 first and is added with its
// IPv4 total length, as the engine does after decap. Every packet lives in
// its own allocation of exactly that length, so a read past any one of
// them is an ASan report.
//
// Checked at every finish(): each output is <= 65535 bytes and <= 64
// segments; every packet added comes out exactly once, either whole or as
// the payload of a super-packet; a super-packet is one flow's consecutive
// sequence numbers with all payloads of gso_size but the last; the TCP
// packets of one flow come out in the order they went in.
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

struct Held {
  std::unique_ptr<uint8_t[]> bytes;
  size_t len = 0;
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

    if (w.segments == 1) {
      FUZZ_CHECK(w.iov_count == 1);
      FUZZ_CHECK(vh.gso_type == weft::kGsoNone && vh.flags == 0);
      size_t k = which(iovs[w.first_iov], false);
      FUZZ_CHECK(k != SIZE_MAX);  // a held packet, whole
      FUZZ_CHECK(w.bytes == batch[k].len);
      seen[k]++;
      in_order(k);
      continue;
    }

    // A super-packet: our header, then the segments' payloads.
    FUZZ_CHECK(w.iov_count == 1 + w.segments);
    const iovec& hv = iovs[w.first_iov];
    const uint8_t* h = static_cast<const uint8_t*>(hv.iov_base);
    FUZZ_CHECK(which(hv, false) == SIZE_MAX);  // in the header storage, not a packet
    FUZZ_CHECK(hv.iov_len >= 40 && hv.iov_len <= 80 && h[0] == 0x45);
    FUZZ_CHECK(fuzz::be16(h + 2) == total && fuzz::ipv4_csum_ok(h, 20));
    FUZZ_CHECK(vh.gso_type == weft::kGsoTcpV4 && vh.flags == weft::kVnetFlagNeedsCsum);
    FUZZ_CHECK(vh.hdr_len == hv.iov_len && vh.csum_start == 20 && vh.csum_offset == 16);
    FUZZ_CHECK(vh.gso_size > 0);
    size_t first = SIZE_MAX, prev = SIZE_MAX, bytes = 0;
    for (size_t i = w.first_iov + 1; i < next_iov; i++) {
      size_t k = which(iovs[i], true);
      FUZZ_CHECK(k != SIZE_MAX);  // the payload of a held packet
      const uint8_t* p = batch[k].bytes.get();
      size_t hl = tcp_hdr_len(p, batch[k].len);
      FUZZ_CHECK(hl == hv.iov_len);
      bool last = i + 1 == next_iov;
      FUZZ_CHECK(last ? iovs[i].iov_len <= vh.gso_size : iovs[i].iov_len == vh.gso_size);
      if (first == SIZE_MAX) {
        first = k;
        // Our header is the first segment's but for length, checksums and PSH.
        FUZZ_CHECK(h[1] == p[1] && std::memcmp(h + 4, p + 4, 6) == 0 && std::memcmp(h + 12, p + 12, 21) == 0);
        FUZZ_CHECK((h[33] & ~0x08) == (p[33] & ~0x08));
        FUZZ_CHECK(std::memcmp(h + 34, p + 34, 2) == 0 && std::memcmp(h + 38, p + 38, hl - 38) == 0);
        // NEEDS_CSUM: the field holds the pseudo-header sum for the kernel to finish.
        uint32_t pseudo = fuzz::ones_sum(h + 12, 8) + 6 + static_cast<uint32_t>(total - 20);
        FUZZ_CHECK(fuzz::be16(h + 36) == fuzz::ones_fold(pseudo));
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
  FUZZ_CHECK(segments == batch.size());
  for (int n : seen) FUZZ_CHECK(n == 1);
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
        pkt[2] = static_cast<uint8_t>(pkt.size() >> 8);
        pkt[3] = static_cast<uint8_t>(pkt.size());
        break;
      }
      default:
        pkt = prev;
        break;
    }
    prev = pkt;
    built += pkt.size();
    size_t total = 0;
    if (weft::check_ipv4(pkt.data(), pkt.size(), &total) == weft::Counter::rx_packets) {
      Held held;
      held.len = total;
      held.bytes.reset(new uint8_t[total]);
      std::memcpy(held.bytes.get(), pkt.data(), total);
      c.add(held.bytes.get(), held.len);
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
