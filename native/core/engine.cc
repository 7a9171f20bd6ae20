#include "core/engine.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <netinet/udp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/sys_error.h"

namespace weft {

namespace {

// Room in front of every tx packet for the VXLAN and Ethernet headers, so
// encapsulation writes headers and never moves the payload. 64 keeps the
// inner packet cache-line aligned.
constexpr size_t kHeadroom = 64;
static_assert(kHeadroom >= kVxlanEncap, "headroom must hold the vxlan encapsulation");
constexpr size_t kMaxPacket = 65535;    // largest IPv4 packet the TUN can hand us
constexpr size_t kMaxDatagram = 65536;  // past the largest UDP payload: nothing is cut

constexpr int kTxReader = 0;
constexpr int kRxReader = 1;

}  // namespace

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg),
      tun_(TunOptions{cfg.tun_name, false, cfg.offload}),
      sock_(cfg.local_ip, cfg.port, cfg.socket_buffer),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_) throw SysError(errno, "eventfd");
  if (cfg_.batch == 0 || cfg_.batch > 1024) throw SysError(EINVAL, "engine batch must be 1..1024");
  if (cfg_.vni > kVniMax) throw SysError(EINVAL, "vni must be < 2^24");
  if (cfg_.inner.strict_source && cfg_.allow_any_source) {
    throw SysError(EINVAL, "strict source checking needs datagrams from peers' public IPs: not with allow any source");
  }
  if (cfg_.offload && !sock_.enable_gro()) throw SysError(errno, "setsockopt UDP_GRO");
}

Engine::~Engine() { stop(); }

void Engine::start(uint32_t subnet, uint8_t prefix_len) {
  if (started_) return;
  if (prefix_len > 32) throw SysError(EINVAL, "subnet prefix length must be 0..32");
  // Written before the threads exist: thread creation orders it before their reads.
  cfg_.inner.subnet = prefix_len == 0 ? 0 : subnet & ~(~uint32_t{0} >> prefix_len);
  cfg_.inner.prefix_len = prefix_len;
  // A restart after stop(): empty the eventfd and clear the flag first.
  uint64_t drained;
  while (::read(wake_.get(), &drained, sizeof drained) > 0) {
  }
  stopping_.store(false);
  try {
    tx_ = std::thread([this] { tx_loop(); });
    rx_ = std::thread([this] { rx_loop(); });
  } catch (const std::system_error& e) {
    wake_all();
    if (tx_.joinable()) tx_.join();
    throw SysError(e.code().value(), "start engine threads");
  }
  started_ = true;
}

void Engine::wake_all() {
  stopping_.store(true);
  uint64_t one = 1;
  // The eventfd stays readable from here on, so both threads wake and see it.
  while (::write(wake_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void Engine::stop() {
  if (!started_) return;
  wake_all();
  tx_.join();
  rx_.join();
  started_ = false;
}

std::string Engine::fatal_error() const {
  std::lock_guard<std::mutex> lock(fatal_mu_);
  return fatal_;
}

void Engine::fail(const char* what, int err) {
  {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (fatal_.empty()) fatal_ = std::string(what) + ": " + std::strerror(err);
  }
  wake_all();
}

bool Engine::wait_readable(int fd) {
  pollfd p[2] = {{fd, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
  for (;;) {
    if (stopping_.load()) return false;
    int r = ::poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      fail("poll", errno);
      return false;
    }
    if (p[1].revents) return false;
    return true;
  }
}

namespace {

// Room for the segments of one super-packet with their encapsulation:
// 64 KiB of payload plus headers even at Linux's smallest MSS (48), where
// a super-packet becomes ~1400 segments. Untouched pages cost no RSS.
constexpr size_t kSegmentBuffer = 256 * 1024;

// Control-message room for one UDP_SEGMENT (u16) or UDP_GRO (int) value.
struct alignas(cmsghdr) Control {
  uint8_t bytes[CMSG_SPACE(sizeof(int))];
};

void set_udp_segment(mmsghdr& m, Control& c, uint16_t size) {
  m.msg_hdr.msg_control = c.bytes;
  m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  cmsghdr* cm = CMSG_FIRSTHDR(&m.msg_hdr);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  std::memcpy(CMSG_DATA(cm), &size, sizeof size);
}

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

// Outbound, step by step: read up to `batch` packets from the TUN (with
// offload each may be a TCP or UDP super-packet behind a virtio-net
// header); drop our own datagrams that came back (a peer routed into the
// overlay); look up the destination's peer in the current FIB snapshot;
// encapsulate in place (headroom) or, for a super-packet, segment into a
// run of datagrams with their headers; send everything with one sendmmsg,
// a run as one UDP_SEGMENT message (resent one by one if refused).
void Engine::tx_loop() {
  pthread_setname_np(pthread_self(), "weft-tx");
  const unsigned n = cfg_.batch;
  const bool offload = cfg_.offload;
  const size_t vnet = offload ? kVnetHdrLen : 0;
  const size_t stride = kHeadroom + kMaxPacket;
  const size_t lead = encap_len(cfg_.format);
  // Not value-initialised: untouched pages of the large buffers cost no RSS.
  std::unique_ptr<uint8_t[]> bufs(new uint8_t[stride * n]);
  std::unique_ptr<uint8_t[]> segs(new uint8_t[offload ? kSegmentBuffer : 1]);
  std::vector<size_t> lens(n);
  // Room for a batch of plain packets, or for the messages of one
  // super-packet (64 segments or 64 KiB each); add_msg flushes when full.
  const size_t max_msgs = n + 4;
  std::vector<iovec> iov(max_msgs);
  std::vector<sockaddr_in> dst(max_msgs);
  std::vector<mmsghdr> msgs(max_msgs);
  std::vector<Control> ctrl(max_msgs);
  std::vector<size_t> msg_bytes(max_msgs);
  std::vector<unsigned> msg_packets(max_msgs);
  std::vector<uint16_t> msg_seg(max_msgs);  // UDP_SEGMENT size, 0 for a plain datagram
  std::vector<int> errs(max_msgs);
  // One refused UDP_SEGMENT message, resent as single datagrams.
  iovec one_iov[kMaxSegments];
  mmsghdr one_msgs[kMaxSegments];
  int one_errs[kMaxSegments];
  const EncapParams ep{cfg_.format, cfg_.vni, cfg_.local_mac};
  const int tun = tun_.fd();
  unsigned out = 0;

  // The kernel refuses a UDP_SEGMENT message whose segments the route
  // cannot carry whole (EINVAL), though it would fragment the same
  // datagrams sent one by one: an underlay MTU set too high, a route over
  // a smaller link. The data still goes, one datagram per segment, and is
  // counted under tx_gso_fallback. A full socket (EAGAIN after the send
  // timeout) would refuse those too: that run is dropped.
  auto send_one_by_one = [&](unsigned i) {
    const size_t lead = encap_len(cfg_.format);
    const uint8_t* data = static_cast<const uint8_t*>(iov[i].iov_base);
    const size_t total = iov[i].iov_len, seg = msg_seg[i];
    unsigned m = 0;
    for (size_t off = 0; off < total && m < kMaxSegments; off += seg, m++) {
      one_iov[m] = {const_cast<uint8_t*>(data + off), std::min(seg, total - off)};
      one_msgs[m] = {};
      one_msgs[m].msg_hdr.msg_name = &dst[i];
      one_msgs[m].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      one_msgs[m].msg_hdr.msg_iov = &one_iov[m];
      one_msgs[m].msg_hdr.msg_iovlen = 1;
    }
    sock_.send_batch(one_msgs, m, one_errs);
    for (unsigned k = 0; k < m; k++) {
      size_t inner = one_iov[k].iov_len - lead;
      counters_.add(Counter::tx_gso_fallback, inner);
      counters_.add(one_msgs[k].msg_len ? Counter::tx_packets : Counter::tx_drop_send_error, inner);
    }
  };
  auto flush = [&] {
    sock_.send_batch(msgs.data(), out, errs.data());
    for (unsigned i = 0; i < out; i++) {
      if (!msgs[i].msg_len && msg_seg[i] && errs[i] != EAGAIN && errs[i] != EWOULDBLOCK) {
        send_one_by_one(i);
        continue;
      }
      Counter c = msgs[i].msg_len ? Counter::tx_packets : Counter::tx_drop_send_error;
      for (unsigned k = 0; k < msg_packets[i]; k++) counters_.add(c, k == 0 ? msg_bytes[i] : 0);
    }
    out = 0;
  };
  auto add_msg = [&](uint8_t* data, size_t len, const Peer& peer, unsigned packets, size_t bytes, uint16_t seg) {
    if (out == max_msgs) flush();  // a small-MSS super-packet can need many messages
    iov[out] = {data, len};
    dst[out] = peer.addr;
    msgs[out] = {};
    msgs[out].msg_hdr.msg_name = &dst[out];
    msgs[out].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    msgs[out].msg_hdr.msg_iov = &iov[out];
    msgs[out].msg_hdr.msg_iovlen = 1;
    if (seg) set_udp_segment(msgs[out], ctrl[out], seg);
    msg_seg[out] = seg;
    msg_packets[out] = packets;
    msg_bytes[out] = bytes;
    out++;
  };

  while (!stopping_.load(std::memory_order_relaxed)) {
    unsigned got = 0;
    while (got < n) {
      ssize_t r = ::read(tun, bufs.get() + size_t{got} * stride + kHeadroom - vnet, kMaxPacket + vnet);
      if (r > static_cast<ssize_t>(vnet)) {
        lens[got++] = static_cast<size_t>(r) - vnet;
        continue;
      }
      if (r >= 0) continue;  // nothing behind the virtio-net header: skip
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        fail("read tun", errno);
        fib_.idle(kTxReader);
        return;
      }
      break;
    }
    if (got == 0) {
      fib_.idle(kTxReader);
      if (!wait_readable(tun)) break;
      continue;
    }

    const Fib* fib = fib_.enter(kTxReader);
    for (unsigned i = 0; i < got; i++) {
      uint8_t* b = bufs.get() + size_t{i} * stride;
      uint8_t* inner = b + kHeadroom;
      size_t len = lens[i];
      VnetHdr vh;
      if (offload) {
        vh = read_vnet_hdr(inner - kVnetHdrLen);
        bool gso = (vh.gso_type & static_cast<uint8_t>(~kGsoEcn)) != kGsoNone;
        if (!gso && (vh.flags & kVnetFlagNeedsCsum) && !complete_checksum(inner, len, vh.csum_start, vh.csum_offset)) {
          counters_.add(Counter::tx_drop_bad_ipv4, len);
          continue;
        }
        if (gso) {
          if (len < kIpv4MinHeader) {
            counters_.add(Counter::tx_drop_bad_gso, len);
            continue;
          }
          // A UDP_SEGMENT run of ours comes back as one USO super-packet.
          if (is_own_datagram(inner, len, cfg_.local_ip, cfg_.port)) {
            counters_.add(Counter::tx_drop_loop, len);
            continue;
          }
          const Peer* peer = fib->lookup(ipv4_dst(inner));
          if (!peer) {
            counters_.add(Counter::tx_drop_no_route, len);
            continue;
          }
          if (cfg_.format == Format::udp && inner[8] <= 1) {
            counters_.add(Counter::tx_drop_ttl, len);
            continue;
          }
          Segments sg = gso_segment(vh, inner, len, segs.get(), kSegmentBuffer, lead);
          if (sg.verdict == Counter::tx_packets && sg.stride > kMaxUdpPayload) sg.verdict = Counter::tx_drop_bad_gso;
          if (sg.verdict != Counter::tx_packets) {
            counters_.add(sg.verdict, len);
            continue;
          }
          // The run goes out now, after what is queued: one segment buffer.
          flush();
          for (unsigned k = 0; k < sg.count; k++) {
            size_t off = 0, olen = 0;
            encap(ep, peer->vtep_mac, segs.get() + k * sg.stride, lead, k + 1 < sg.count ? sg.seg_len : sg.last_len, &off, &olen);
          }
          const unsigned per_msg = static_cast<unsigned>(std::min<size_t>(kMaxSegments, kMaxUdpPayload / sg.stride));
          for (unsigned k = 0; k < sg.count; k += per_msg) {
            unsigned m = std::min(per_msg, sg.count - k);
            bool has_last = k + m == sg.count;
            size_t tail = has_last ? sg.last_len : sg.seg_len;
            size_t bytes = (m - 1) * sg.stride + lead + tail;
            size_t inner_bytes = (m - 1) * sg.seg_len + tail;
            add_msg(segs.get() + k * sg.stride, bytes, *peer, m, inner_bytes, m > 1 ? static_cast<uint16_t>(sg.stride) : 0);
          }
          flush();
          continue;
        }
      }
      Counter v = check_tx_ipv4(inner, len);
      if (v == Counter::tx_packets && is_own_datagram(inner, len, cfg_.local_ip, cfg_.port)) v = Counter::tx_drop_loop;
      if (v != Counter::tx_packets) {
        counters_.add(v, len);
        continue;
      }
      const Peer* peer = fib->lookup(ipv4_dst(inner));
      if (!peer) {
        counters_.add(Counter::tx_drop_no_route, len);
        continue;
      }
      size_t off = 0, olen = 0;
      v = encap(ep, peer->vtep_mac, b, kHeadroom, len, &off, &olen);
      if (v != Counter::tx_packets) {
        counters_.add(v, len);
        continue;
      }
      add_msg(b + off, olen, *peer, 1, len, 0);
    }
    flush();
  }
  fib_.idle(kTxReader);
}

// Inbound: receive up to `batch` messages (with UDP_GRO each may hold a
// run of datagrams from one sender); drop anything not from a current
// peer; split runs, validate and decapsulate every datagram, and drop an
// inner packet not for our subnet (or, strict, not from the sender's);
// then either write each inner packet to the TUN (a partial checksum
// completed) or, with offload, let the coalescer merge in-order TCP
// segments into super-packets and write those (a partial checksum marked
// NEEDS_CSUM). A kernel peer's TCP super-packet is cut to the MTU.
void Engine::rx_loop() {
  pthread_setname_np(pthread_self(), "weft-rx");
  const unsigned n = cfg_.batch;
  const bool offload = cfg_.offload;
  const size_t stride = kMaxDatagram;
  std::unique_ptr<uint8_t[]> bufs(new uint8_t[stride * n]);
  std::vector<iovec> iov(n);
  std::vector<sockaddr_in> src(n);
  std::vector<mmsghdr> msgs(n);
  std::vector<Control> ctrl(n);
  for (unsigned i = 0; i < n; i++) iov[i] = {bufs.get() + size_t{i} * stride, kMaxDatagram};
  const DecapParams dp{cfg_.format, cfg_.vni, cfg_.local_mac, cfg_.mtu};
  const int tun = tun_.fd();
  Coalescer coalescer;
  std::vector<iovec> wv;
  wv.reserve(kMaxSegments + 2);

  auto writev_tun = [&](const iovec* v, int count) {
    ssize_t w;
    do {
      w = ::writev(tun, v, count);
    } while (w < 0 && errno == EINTR);
    return w >= 0;
  };
  auto write_tun = [&](const iovec* v, int count, unsigned packets, size_t bytes) {
    Counter c = writev_tun(v, count) ? Counter::rx_packets : Counter::rx_drop_tun_write_error;
    for (unsigned k = 0; k < packets; k++) counters_.add(c, k == 0 ? bytes : 0);
  };
  // A TCP super-packet from a kernel peer's offload (see DecapResult): with
  // offload the TUN cuts it, without we do. Counted as the one packet it
  // arrived as; its checksum is checked first, since both ways give the
  // pieces fresh checksums.
  std::unique_ptr<uint8_t[]> pieces;
  auto deliver_super = [&](const uint8_t* pkt, size_t len, size_t datagram) {
    L4Csum csum;
    if (offload) {
      csum = coalescer.add_super(pkt, len, cfg_.mtu);
    } else {
      csum = inspect_l4_checksum(pkt, len, true);
    }
    if (csum != L4Csum::valid && csum != L4Csum::partial) {
      counters_.add(Counter::rx_drop_oversized, datagram);
      return;
    }
    if (csum == L4Csum::partial) counters_.add(Counter::rx_csum_partial, len);
    if (offload) return;
    if (!pieces) pieces.reset(new uint8_t[kSegmentBuffer]);
    const size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
    const size_t hdr = ihl + static_cast<size_t>(pkt[ihl + 12] >> 4) * 4;  // decap checked both, and hdr < mtu
    VnetHdr vh;
    vh.gso_type = kGsoTcpV4;
    vh.gso_size = static_cast<uint16_t>(cfg_.mtu - hdr);
    Segments sg = gso_segment(vh, pkt, len, pieces.get(), kSegmentBuffer, 0);
    if (sg.verdict != Counter::tx_packets) {
      counters_.add(Counter::rx_drop_oversized, datagram);
      return;
    }
    bool ok = true;
    for (unsigned k = 0; k < sg.count; k++) {
      iovec v{pieces.get() + k * sg.stride, k + 1 < sg.count ? sg.seg_len : sg.last_len};
      ok = writev_tun(&v, 1) && ok;
    }
    counters_.add(ok ? Counter::rx_packets : Counter::rx_drop_tun_write_error, len);
  };

  while (!stopping_.load(std::memory_order_relaxed)) {
    for (unsigned i = 0; i < n; i++) {
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &src[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (offload) {
        msgs[i].msg_hdr.msg_control = ctrl[i].bytes;
        msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i].bytes;
      }
    }
    int got = sock_.recv_batch(msgs.data(), n);
    if (got <= 0) {
      fib_.idle(kRxReader);
      if (!wait_readable(sock_.fd())) break;
      continue;
    }

    const Fib* fib = fib_.enter(kRxReader);
    coalescer.reset();
    for (int i = 0; i < got; i++) {
      uint8_t* b = static_cast<uint8_t*>(iov[i].iov_base);
      size_t len = msgs[i].msg_len;
      // Cheapest test first: anyone on the underlay can reach this port.
      if (msgs[i].msg_hdr.msg_namelen != sizeof(sockaddr_in) || src[i].sin_family != AF_INET ||
          (!cfg_.allow_any_source && !fib->is_peer(ntohl(src[i].sin_addr.s_addr)))) {
        counters_.add(Counter::rx_drop_unknown_peer, len);
        continue;
      }
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        counters_.add(Counter::rx_drop_oversized, len);
        continue;
      }
      if (len == 0) {  // an empty datagram: nothing to split, still counted
        counters_.add(Counter::rx_drop_truncated, 0);
        continue;
      }
      const uint32_t outer_src = ntohl(src[i].sin_addr.s_addr);
      int gro = offload ? udp_gro_size(msgs[i].msg_hdr) : 0;
      size_t seg = gro > 0 ? static_cast<size_t>(gro) : len;
      for (size_t off = 0; off < len; off += seg) {
        size_t d = std::min(seg, len - off);
        DecapResult r = decap(dp, b + off, d);
        if (r.verdict == Counter::rx_packets) r.verdict = check_inner(cfg_.inner, b + off + r.inner_off, outer_src, *fib);
        if (r.verdict != Counter::rx_packets) {
          counters_.add(r.verdict, d);
          continue;
        }
        uint8_t* inner = b + off + r.inner_off;
        if (r.super_packet) {
          deliver_super(inner, r.inner_len, d);
        } else if (offload) {
          if (coalescer.add(inner, r.inner_len) == L4Csum::partial) counters_.add(Counter::rx_csum_partial, r.inner_len);
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
    if (offload) {
      coalescer.finish();
      const std::vector<iovec>& iovs = coalescer.iovs();
      for (const TunWrite& w : coalescer.writes()) {
        wv.clear();
        wv.push_back({const_cast<uint8_t*>(w.vnet), kVnetHdrLen});
        wv.insert(wv.end(), iovs.begin() + static_cast<long>(w.first_iov),
                  iovs.begin() + static_cast<long>(w.first_iov + w.iov_count));
        write_tun(wv.data(), static_cast<int>(wv.size()), w.segments, w.bytes);
      }
    }
  }
  fib_.idle(kRxReader);
}

}  // namespace weft
