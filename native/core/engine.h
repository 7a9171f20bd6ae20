// The packet engine: one TUN, one UDP socket, two threads.
//
//   tx (weft-tx): TUN read batch -> check IPv4, not our own datagram ->
//                 FIB lookup -> encap in place (headroom) -> sendmmsg batch
//   rx (weft-rx): recvmmsg batch -> sender is a peer? -> decap/validate ->
//                 inner addresses ours? -> TUN write
//
// Why this shape: flannel's udp proxy moves one packet per syscall on one
// thread; batching the socket side and splitting directions across two
// threads is the first step, and every seam takes a batch so the offloads
// (IFF_VNET_HDR/TSO, UDP_SEGMENT, UDP_GRO) slot in later without changing
// callers. Packet threads never throw and never call into JS: everything
// they decide is counted. Stop is flag + eventfd wake + join.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/counters.h"
#include "core/encap.h"
#include "core/fd.h"
#include "core/fib.h"
#include "core/offload.h"
#include "core/tun.h"
#include "core/udp_socket.h"

namespace weft {

struct EngineConfig {
  Format format = Format::vxlan;
  std::string tun_name;
  uint32_t mtu = 1450;        // the TUN's MTU: largest inner packet
  uint32_t local_ip = 0;      // host order; the UDP socket binds here
  uint16_t port = 8472;
  uint32_t vni = 1;
  Mac local_mac{};            // our VtepMAC (vxlan)
  unsigned batch = 64;        // packets per syscall batch
  int socket_buffer = 4 << 20;
  // TUN TSO/checksum offload + UDP_SEGMENT + UDP_GRO. Off: one packet per
  // TUN read and per datagram, the shape of flannel's proxy (the baseline).
  bool offload = true;
  // Accept datagrams from any source address, as flannel does, for
  // underlays where NAT hides a peer's public IP. Off: only from peers.
  bool allow_any_source = false;
  // Whether inner sources are checked against the sending peer too (which
  // needs the peer check: refused together with allow_any_source). The
  // rule's subnet comes with start(): the TUN is opened before the lease.
  InnerRule inner;
};

class Engine {
 public:
  // Opens the TUN and binds the socket; throws SysError. Threads not started.
  explicit Engine(const EngineConfig& cfg);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the threads; subnet/prefix_len (our lease, host order) is the
  // only inner destination taken from the overlay. Throws SysError.
  void start(uint32_t subnet, uint8_t prefix_len);
  void stop();  // idempotent; joins both threads
  // False once stopped, or once a packet thread died (then fatal_error()).
  bool running() const { return started_ && !stopping_.load(); }

  FibTable& fib() { return fib_; }
  const Counters& counters() const { return counters_; }
  const std::string& tun_name() const { return tun_.name(); }
  const EngineConfig& config() const { return cfg_; }
  // Non-empty once a packet thread hit an error it cannot go on from; the
  // engine then stops both threads (a half-working data plane is worse).
  std::string fatal_error() const;

 private:
  void tx_loop();
  void rx_loop();
  // Waits until fd is readable or stop is signalled; false when stopping.
  bool wait_readable(int fd);
  void fail(const char* what, int err);
  void wake_all();

  EngineConfig cfg_;
  Tun tun_;
  UdpSocket sock_;
  Fd wake_;  // eventfd, written once by stop()
  FibTable fib_;
  Counters counters_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::thread tx_, rx_;
  mutable std::mutex fatal_mu_;
  std::string fatal_;  // guarded by fatal_mu_; first failure wins
};

}  // namespace weft
