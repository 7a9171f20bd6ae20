#include "core/engine.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
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
      tun_(TunOptions{cfg.tun_name}),
      sock_(cfg.local_ip, cfg.port, cfg.socket_buffer),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_) throw SysError(errno, "eventfd");
  if (cfg_.batch == 0 || cfg_.batch > 1024) throw SysError(EINVAL, "engine batch must be 1..1024");
  if (cfg_.vni > kVniMax) throw SysError(EINVAL, "vni must be < 2^24");
}

Engine::~Engine() { stop(); }

void Engine::start() {
  if (started_) return;
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

void Engine::tx_loop() {
  pthread_setname_np(pthread_self(), "weft-tx");
  const unsigned n = cfg_.batch;
  const size_t stride = kHeadroom + kMaxPacket;
  // Not value-initialised: untouched pages of the large buffers cost no RSS.
  std::unique_ptr<uint8_t[]> bufs(new uint8_t[stride * n]);
  std::vector<size_t> lens(n), inner_lens(n);
  std::vector<iovec> iov(n);
  std::vector<sockaddr_in> dst(n);
  std::vector<mmsghdr> msgs(n);
  const EncapParams ep{cfg_.format, cfg_.vni, cfg_.local_mac};
  const int tun = tun_.fd();

  while (!stopping_.load(std::memory_order_relaxed)) {
    unsigned got = 0;
    while (got < n) {
      ssize_t r = ::read(tun, bufs.get() + size_t{got} * stride + kHeadroom, kMaxPacket);
      if (r > 0) {
        lens[got++] = static_cast<size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN) {
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
    unsigned out = 0;
    for (unsigned i = 0; i < got; i++) {
      uint8_t* b = bufs.get() + size_t{i} * stride;
      uint8_t* inner = b + kHeadroom;
      Counter v = check_tx_ipv4(inner, lens[i]);
      if (v != Counter::tx_packets) {
        counters_.add(v, lens[i]);
        continue;
      }
      const Peer* peer = fib->lookup(ipv4_dst(inner));
      if (!peer) {
        counters_.add(Counter::tx_drop_no_route, lens[i]);
        continue;
      }
      size_t off = 0, len = 0;
      v = encap(ep, peer->vtep_mac, b, kHeadroom, lens[i], &off, &len);
      if (v != Counter::tx_packets) {
        counters_.add(v, lens[i]);
        continue;
      }
      iov[out] = {b + off, len};
      dst[out] = peer->addr;
      msgs[out] = {};
      msgs[out].msg_hdr.msg_name = &dst[out];
      msgs[out].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[out].msg_hdr.msg_iov = &iov[out];
      msgs[out].msg_hdr.msg_iovlen = 1;
      inner_lens[out] = lens[i];
      out++;
    }
    sock_.send_batch(msgs.data(), out);
    for (unsigned i = 0; i < out; i++) {
      counters_.add(msgs[i].msg_len ? Counter::tx_packets : Counter::tx_drop_send_error, inner_lens[i]);
    }
  }
  fib_.idle(kTxReader);
}

void Engine::rx_loop() {
  pthread_setname_np(pthread_self(), "weft-rx");
  const unsigned n = cfg_.batch;
  const size_t stride = kMaxDatagram;
  std::unique_ptr<uint8_t[]> bufs(new uint8_t[stride * n]);
  std::vector<iovec> iov(n);
  std::vector<sockaddr_in> src(n);
  std::vector<mmsghdr> msgs(n);
  for (unsigned i = 0; i < n; i++) iov[i] = {bufs.get() + size_t{i} * stride, stride};
  const DecapParams dp{cfg_.format, cfg_.vni, cfg_.local_mac, cfg_.mtu};
  const int tun = tun_.fd();

  while (!stopping_.load(std::memory_order_relaxed)) {
    for (unsigned i = 0; i < n; i++) {
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &src[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got = sock_.recv_batch(msgs.data(), n);
    if (got <= 0) {
      fib_.idle(kRxReader);
      if (!wait_readable(sock_.fd())) break;
      continue;
    }

    const Fib* fib = fib_.enter(kRxReader);
    for (int i = 0; i < got; i++) {
      const uint8_t* b = bufs.get() + size_t(i) * stride;
      size_t len = msgs[i].msg_len;
      // Cheapest test first: anyone on the underlay can reach this port.
      if (msgs[i].msg_hdr.msg_namelen != sizeof(sockaddr_in) || src[i].sin_family != AF_INET ||
          !fib->is_peer(ntohl(src[i].sin_addr.s_addr))) {
        counters_.add(Counter::rx_drop_unknown_peer, len);
        continue;
      }
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        counters_.add(Counter::rx_drop_oversized, len);
        continue;
      }
      DecapResult r = decap(dp, b, len);
      if (r.verdict != Counter::rx_packets) {
        counters_.add(r.verdict, len);
        continue;
      }
      ssize_t w;
      do {
        w = ::write(tun, b + r.inner_off, r.inner_len);
      } while (w < 0 && errno == EINTR);
      counters_.add(w == static_cast<ssize_t>(r.inner_len) ? Counter::rx_packets : Counter::rx_drop_tun_write_error,
                    r.inner_len);
    }
  }
  fib_.idle(kRxReader);
}

}  // namespace weft
