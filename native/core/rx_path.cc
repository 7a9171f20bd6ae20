#include "core/rx_path.h"

#include <arpa/inet.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/engine.h"

namespace weft {

namespace {

// Room for a kernel super-packet (64 KiB) cut into MTU-sized pieces.
constexpr size_t kPieceBuffer = 256 * 1024;

int udp_gro_size(const msghdr& h) {
  for (cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(const_cast<msghdr*>(&h), cm)) {
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      std::memcpy(&v, CMSG_DATA(cm), sizeof v);
      return v;
    }
  }
  return 0;
}

}  // namespace

RxPath::RxPath(const EngineConfig& cfg, int tun_fd, UdpSocket& sock, Counters& counters)
    : cfg_(cfg),
      tun_(tun_fd),
      sock_(sock),
      counters_(counters),
      dp_{cfg.format, cfg.vni, cfg.local_mac, cfg.mtu},
      bufs_(size_t{cfg.batch} * kMaxDatagram),
      iov_(cfg.batch),
      src_(cfg.batch),
      msgs_(cfg.batch),
      ctrl_(cfg.batch),
      pieces_(cfg.offload ? 0 : kPieceBuffer) {
  for (unsigned i = 0; i < cfg.batch; i++) iov_[i] = {bufs_.data() + size_t{i} * kMaxDatagram, kMaxDatagram};
  wv_.reserve(kMaxSegments + 2);
}

unsigned RxPath::messages_to_ask() const {
  if (!cfg_.batch_bytes) return cfg_.batch;
  size_t fit = cfg_.batch_bytes / std::max<size_t>(largest_, 2048);
  return static_cast<unsigned>(std::clamp<size_t>(fit, 1, cfg_.batch));
}

bool RxPath::writev_tun(const iovec* v, int count) {
  ssize_t w;
  do {
    w = ::writev(tun_, v, count);
  } while (w < 0 && errno == EINTR);
  return w >= 0;
}

void RxPath::write_tun(const iovec* v, int count, unsigned packets, size_t bytes) {
  Counter c = writev_tun(v, count) ? Counter::rx_packets : Counter::rx_drop_tun_write_error;
  counters_.add(c, bytes, packets);
}

// A TCP super-packet from a kernel peer's offload (see DecapResult): with
// offload the TUN cuts it, without we do. Counted as the one packet it
// arrived as; its checksum is checked first, since both ways give the
// pieces fresh checksums.
void RxPath::deliver_super(const uint8_t* pkt, size_t len, size_t datagram) {
  L4Csum csum = cfg_.offload ? coalescer_.add_super(pkt, len, cfg_.mtu) : inspect_l4_checksum(pkt, len, true);
  if (csum != L4Csum::valid && csum != L4Csum::partial) {
    counters_.add(Counter::rx_drop_oversized, datagram);
    return;
  }
  if (csum == L4Csum::partial) counters_.add(Counter::rx_csum_partial, len);
  if (cfg_.offload) return;
  const size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  const size_t hdr = ihl + static_cast<size_t>(pkt[ihl + 12] >> 4) * 4;  // decap checked both, and hdr < mtu
  VnetHdr vh;
  vh.gso_type = kGsoTcpV4;
  vh.gso_size = static_cast<uint16_t>(cfg_.mtu - hdr);
  Segments sg = gso_segment(vh, pkt, len, pieces_.data(), pieces_.size(), 0);
  if (sg.verdict != Counter::tx_packets) {
    counters_.add(Counter::rx_drop_oversized, datagram);
    return;
  }
  bool ok = true;
  for (unsigned k = 0; k < sg.count; k++) {
    iovec v{pieces_.data() + k * sg.stride, k + 1 < sg.count ? sg.seg_len : sg.last_len};
    ok = writev_tun(&v, 1) && ok;
  }
  counters_.add(ok ? Counter::rx_packets : Counter::rx_drop_tun_write_error, len);
}

int RxPath::drain(FibTable& fibs, int reader) {
  const bool offload = cfg_.offload;
  const unsigned n = messages_to_ask();
  for (unsigned i = 0; i < n; i++) {
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_name = &src_[i];
    msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
    if (offload) {
      msgs_[i].msg_hdr.msg_control = ctrl_[i].bytes;
      msgs_[i].msg_hdr.msg_controllen = sizeof ctrl_[i].bytes;
    }
  }
  int got = sock_.recv_batch(msgs_.data(), n);
  if (got <= 0) return 0;

  const Fib* fib = fibs.enter(reader);
  coalescer_.reset();
  largest_ = 0;
  for (int i = 0; i < got; i++) {
    uint8_t* b = static_cast<uint8_t*>(iov_[i].iov_base);
    size_t len = msgs_[i].msg_len;
    largest_ = std::max(largest_, len);
    // Cheapest test first: anyone on the underlay can reach this port.
    if (msgs_[i].msg_hdr.msg_namelen != sizeof(sockaddr_in) || src_[i].sin_family != AF_INET ||
        (!cfg_.allow_any_source && !fib->is_peer(ntohl(src_[i].sin_addr.s_addr)))) {
      counters_.add(Counter::rx_drop_unknown_peer, len);
      continue;
    }
    if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
      counters_.add(Counter::rx_drop_oversized, len);
      continue;
    }
    if (len == 0) {  // an empty datagram: nothing to split, still counted
      counters_.add(Counter::rx_drop_truncated, 0);
      continue;
    }
    const uint32_t outer_src = ntohl(src_[i].sin_addr.s_addr);
    int gro = offload ? udp_gro_size(msgs_[i].msg_hdr) : 0;
    size_t seg = gro > 0 ? static_cast<size_t>(gro) : len;
    for (size_t off = 0; off < len; off += seg) {
      size_t d = std::min(seg, len - off);
      DecapResult r = decap(dp_, b + off, d);
      if (r.verdict == Counter::rx_packets) r.verdict = check_inner(cfg_.inner, b + off + r.inner_off, outer_src, *fib);
      if (r.verdict != Counter::rx_packets) {
        counters_.add(r.verdict, d);
        continue;
      }
      uint8_t* inner = b + off + r.inner_off;
      if (r.super_packet) {
        deliver_super(inner, r.inner_len, d);
      } else if (offload) {
        if (coalescer_.add(inner, r.inner_len) == L4Csum::partial) counters_.add(Counter::rx_csum_partial, r.inner_len);
      } else {
        if (inspect_l4_checksum(inner, r.inner_len, false) == L4Csum::partial) {
          complete_l4_checksum(inner, r.inner_len);
          counters_.add(Counter::rx_csum_partial, r.inner_len);
        }
        iovec v{inner, r.inner_len};
        write_tun(&v, 1, 1, r.inner_len);
      }
    }
  }
  fibs.idle(reader);  // nothing below reads the FIB
  if (offload) {
    coalescer_.finish();
    const std::vector<iovec>& iovs = coalescer_.iovs();
    for (const TunWrite& w : coalescer_.writes()) {
      wv_.clear();
      wv_.push_back({const_cast<uint8_t*>(w.vnet), kVnetHdrLen});
      wv_.insert(wv_.end(), iovs.begin() + static_cast<long>(w.first_iov),
                 iovs.begin() + static_cast<long>(w.first_iov + w.iov_count));
      write_tun(wv_.data(), static_cast<int>(wv_.size()), w.segments, w.bytes);
    }
  }
  return got;
}

}  // namespace weft
