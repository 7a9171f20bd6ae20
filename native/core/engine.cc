#include "core/engine.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/sys_error.h"

namespace weft {

namespace {

constexpr int kTxReader = 0;  // also the one thread's, when it serves both
constexpr int kRxReader = 1;

uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec);
}

}  // namespace

namespace {
unsigned auto_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 2;
  return CPU_COUNT(&set) <= 2 ? 1 : 2;
}
}  // namespace

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg),
      tun_(TunOptions{cfg.tun_name, cfg.offload, cfg.tun_queue}),
      sock_(cfg.local_ip, cfg.port, cfg.socket_buffer),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_) throw SysError(errno, "eventfd");
  if (cfg_.batch == 0 || cfg_.batch > 1024) throw SysError(EINVAL, "engine batch must be 1..1024");
  if (cfg_.threads > 2) throw SysError(EINVAL, "engine threads must be 0 (auto), 1 or 2");
  if (cfg_.threads == 0) cfg_.threads = auto_threads();
  if (cfg_.batch_bytes != 0 && (cfg_.batch_bytes < 4096 || cfg_.batch_bytes > (64u << 20))) {
    throw SysError(EINVAL, "engine batch bytes must be 0 (no cap) or 4 KiB..64 MiB");
  }
  if (cfg_.busy_poll_us > 10000) throw SysError(EINVAL, "engine busy poll must be 0..10000 us");
  if (cfg_.vni > kVniMax) throw SysError(EINVAL, "vni must be < 2^24");
  if (cfg_.inner.strict_source && cfg_.allow_any_source) {
    throw SysError(EINVAL, "strict source checking needs datagrams from peers' public IPs: not with allow any source");
  }
  if (cfg_.offload && !sock_.enable_gro()) throw SysError(errno, "setsockopt UDP_GRO");
  tx_ = std::make_unique<TxPath>(cfg_, tun_.fd(), sock_, counters_);
  rx_ = std::make_unique<RxPath>(cfg_, tun_.fd(), sock_, counters_);
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
    if (cfg_.threads == 1) {
      threads_[0] = std::thread([this] { run_both(); });
    } else {
      threads_[0] = std::thread([this] { run_tx(); });
      threads_[1] = std::thread([this] { run_rx(); });
    }
  } catch (const std::system_error& e) {
    wake_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    throw SysError(e.code().value(), "start engine threads");
  }
  started_ = true;
}

void Engine::wake_all() {
  stopping_.store(true);
  uint64_t one = 1;
  // The eventfd stays readable from here on, so every thread wakes and sees it.
  while (::write(wake_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void Engine::stop() {
  if (!started_) return;
  wake_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
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

bool Engine::wait_readable(const int* fds, int count) {
  pollfd p[3];
  for (int i = 0; i < count; i++) p[i] = {fds[i], POLLIN, 0};
  p[count] = {wake_.get(), POLLIN, 0};
  for (;;) {
    if (stopping_.load()) return false;
    int r = ::poll(p, static_cast<nfds_t>(count + 1), -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      fail("poll", errno);
      return false;
    }
    return !p[count].revents;
  }
}

bool Engine::busy_poll(const int* fds, int count, uint64_t last_work_ns) {
  if (cfg_.busy_poll_us == 0 || last_work_ns == 0) return false;
  const uint64_t until = last_work_ns + uint64_t{cfg_.busy_poll_us} * 1000;
  pollfd p[3];
  for (int i = 0; i < count; i++) p[i] = {fds[i], POLLIN, 0};
  p[count] = {wake_.get(), POLLIN, 0};
  while (now_ns() < until) {
    int r = ::poll(p, static_cast<nfds_t>(count + 1), 0);
    if (r > 0) return !p[count].revents;
    // Whatever else is runnable here (the pod that is about to answer, the
    // other engine) goes first: spinning must never delay the reply it waits for.
    sched_yield();
  }
  return false;
}

// A thread goes round its drains until none finds work, then (after the
// busy-poll window, if any) sleeps in poll() until a socket is readable.
// Every drain leaves its FIB reader idle, so a sleeping thread never holds
// a FIB writer up.

void Engine::run_tx() {
  pthread_setname_np(pthread_self(), "weft-tx");
  const int fd = tun_.fd();
  uint64_t last = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    int r = tx_->drain(fib_, kTxReader);
    if (r < 0) return fail("read tun", -r);
    if (r > 0) {
      last = now_ns();
      continue;
    }
    if (busy_poll(&fd, 1, last)) continue;
    if (!wait_readable(&fd, 1)) break;
  }
}

void Engine::run_rx() {
  pthread_setname_np(pthread_self(), "weft-rx");
  const int fd = sock_.fd();
  uint64_t last = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    if (rx_->drain(fib_, kRxReader) > 0) {
      last = now_ns();
      continue;
    }
    if (busy_poll(&fd, 1, last)) continue;
    if (!wait_readable(&fd, 1)) break;
  }
}

// Both directions in turn: an ACK or a reply that the last drain caused is
// usually waiting by the time the other drain runs, with no wake-up.
void Engine::run_both() {
  pthread_setname_np(pthread_self(), "weft-io");
  const int fds[2] = {tun_.fd(), sock_.fd()};
  uint64_t last = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    int t = tx_->drain(fib_, kTxReader);
    if (t < 0) return fail("read tun", -t);
    int r = rx_->drain(fib_, kTxReader);
    if (t > 0 || r > 0) {
      last = now_ns();
      continue;
    }
    if (busy_poll(fds, 2, last)) continue;
    if (!wait_readable(fds, 2)) break;
  }
}

}  // namespace weft
