#include "bench/core_bench.h"

#include <cstring>

#include "core/checksum.h"
#include "core/offload.h"

namespace weft::bench {

namespace {

constexpr size_t kHeadroom = 64;                 // as the engine's tx arena
constexpr uint32_t kSender = 0xc0a80001;         // 192.168.0.1, the peer holding 10.244.1.0/24
constexpr size_t kSuperPayload = 65535 - 40;     // the largest TSO super-packet's payload
constexpr size_t kSegmentOut = 256 * 1024;       // the engine's segment buffer

void ipv4_header(uint8_t* p, size_t total, uint8_t proto) {
  p[0] = 0x45;
  store_be16(p + 2, static_cast<uint16_t>(total));
  p[8] = 64;
  p[9] = proto;
  const uint8_t src[4] = {10, 244, 1, 2}, dst[4] = {10, 244, 2, 2};
  std::memcpy(p + 12, src, 4);
  std::memcpy(p + 16, dst, 4);
  store_be16(p + 10, inet_checksum(p, 20));
}

}  // namespace

CoreBench::CoreBench(const std::string& op, Format format, uint32_t size, uint32_t batch)
    : format_(format), size_(size), batch_(batch) {
  if (op == "encap") op_ = Op::encap;
  else if (op == "decap") op_ = Op::decap;
  else if (op == "rx") op_ = Op::rx;
  else if (op == "rx-strict") op_ = Op::rx_strict;
  else if (op == "csum-portable") op_ = Op::csum_portable;
  else if (op == "csum-avx2") op_ = Op::csum_avx2;
  else if (op == "segment-copy") op_ = Op::segment_copy;
  else if (op == "segment-headers") op_ = Op::segment_headers;
  else throw std::invalid_argument("unknown op " + op);
  if (batch < 1 || batch > 1024) throw std::invalid_argument("batch must be 1..1024");
  if (op_ == Op::csum_avx2 && !csum_partial_avx2) throw std::invalid_argument("this CPU has no AVX2");

  if (op_ == Op::segment_copy || op_ == Op::segment_headers) {
    // size is the MSS; one super-packet, cut batch times per run.
    if (size < 48 || size > 9000) throw std::invalid_argument("MSS must be 48..9000");
    bufs_.assign(kHeadroom + 40 + kSuperPayload, 0);
    uint8_t* p = bufs_.data() + kHeadroom;
    for (size_t i = 40; i < 40 + kSuperPayload; i++) p[i] = static_cast<uint8_t>(i * 7);
    ipv4_header(p, 40 + kSuperPayload, 6);
    p[20 + 12] = 5 << 4;  // TCP data offset
    p[20 + 13] = 0x10;    // ACK
    out_.assign(kSegmentOut, 0);
    return;
  }
  if (size < kIpv4MinHeader || size > 9000) throw std::invalid_argument("size must be 20..9000");
  stride_ = kHeadroom + size;
  bufs_.assign(stride_ * batch, 0);
  if (op_ == Op::csum_portable || op_ == Op::csum_avx2) {
    for (size_t i = 0; i < bufs_.size(); i++) bufs_[i] = static_cast<uint8_t>(i * 13);
    return;
  }
  rule_.subnet = 0x0af40200;  // 10.244.2.0/24: the packets' destination is ours
  rule_.prefix_len = 24;
  rule_.strict_source = op_ == Op::rx_strict;
  for (uint32_t i = 0; i < 256; i++) {
    FibEntry e;
    e.prefix = 0x0af40000 | (i << 8);  // 10.244.i.0/24
    e.prefix_len = 24;
    e.peer.public_ip = 0xc0a80000 | i;  // 192.168.0.i
    normalize_entry(&e);
    fib_.upsert(e);
  }
  local_ = Mac{2, 0, 0, 0, 0, 1};
  peer_ = Mac{2, 0, 0, 0, 0, 2};
  for (uint32_t i = 0; i < batch; i++) {
    uint8_t* b = bufs_.data() + i * stride_;
    ipv4_header(b + kHeadroom, size, 17);
    b[kHeadroom + 8] = 255;
    store_be16(b + kHeadroom + 10, 0);
    store_be16(b + kHeadroom + 10, inet_checksum(b + kHeadroom, 20));
    if (op_ != Op::encap) {
      // Decap input: the datagram a peer sends us.
      size_t off = 0, len = 0;
      encap(EncapParams{format_, 1, peer_}, local_, b, kHeadroom, size, &off, &len);
    }
  }
}

uint64_t CoreBench::run(uint32_t iterations) {
  uint64_t ok = 0;
  switch (op_) {
    case Op::csum_portable:
    case Op::csum_avx2: {
      auto sum = op_ == Op::csum_avx2 ? csum_partial_avx2 : csum_partial_portable;
      uint32_t acc = 0;
      for (uint32_t it = 0; it < iterations; it++) {
        for (uint32_t i = 0; i < batch_; i++) acc += sum(bufs_.data() + i * stride_ + kHeadroom, size_, 0);
      }
      // Every call summed; acc only keeps the compiler from skipping them.
      return uint64_t{iterations} * batch_ + (acc == 0xffffffffu);
    }
    case Op::segment_copy:
    case Op::segment_headers: {
      VnetHdr vh;
      vh.gso_type = kGsoTcpV4;
      vh.gso_size = static_cast<uint16_t>(size_);
      const uint8_t* pkt = bufs_.data() + kHeadroom;
      const size_t len = 40 + kSuperPayload;
      for (uint32_t it = 0; it < iterations; it++) {
        for (uint32_t i = 0; i < batch_; i++) {
          Segments s = op_ == Op::segment_copy ? gso_segment(vh, pkt, len, out_.data(), out_.size(), kVxlanEncap)
                                               : gso_segment_headers(vh, pkt, len, out_.data(), out_.size(), kVxlanEncap);
          ok += s.verdict == Counter::tx_packets;
        }
      }
      return ok;
    }
    default:
      return run_packets(iterations);
  }
}

uint64_t CoreBench::run_packets(uint32_t iterations) {
  const EncapParams ep{format_, 1, local_};
  const DecapParams dp{format_, 1, local_, 65535};
  const size_t decap_off = kHeadroom - encap_len(format_);
  const size_t decap_len = size_ + encap_len(format_);
  const bool inner_check = op_ == Op::rx || op_ == Op::rx_strict;
  uint64_t ok = 0;
  for (uint32_t it = 0; it < iterations; it++) {
    for (uint32_t i = 0; i < batch_; i++) {
      uint8_t* b = bufs_.data() + i * stride_;
      if (op_ == Op::encap) {
        if (format_ == Format::udp && b[kHeadroom + 8] <= 1) {
          // udp encap decrements the TTL: start again from 255 (1 pass in 254).
          b[kHeadroom + 8] = 255;
          store_be16(b + kHeadroom + 10, 0);
          store_be16(b + kHeadroom + 10, inet_checksum(b + kHeadroom, 20));
        }
        size_t off = 0, len = 0;
        ok += check_tx_ipv4(b + kHeadroom, size_) == Counter::tx_packets &&
              encap(ep, peer_, b, kHeadroom, size_, &off, &len) == Counter::tx_packets;
      } else {
        DecapResult r = decap(dp, b + decap_off, decap_len);
        if (r.verdict == Counter::rx_packets && inner_check) {
          r.verdict = check_inner(rule_, b + decap_off + r.inner_off, kSender, fib_);
        }
        ok += r.verdict == Counter::rx_packets;
      }
    }
  }
  return ok;
}

}  // namespace weft::bench
