// The packet engine: one TUN, one UDP socket, and the two paths between
// them (tx_path.h, rx_path.h), run by one thread or by two.
//
//   tx: TUN read (a super-packet with offload) -> check IPv4, not our own
//       datagram -> FIB lookup -> encap in place (headroom), or segment into
//       header blocks + payload iovecs -> one sendmmsg per drain
//   rx: recvmmsg (runs of datagrams with UDP_GRO) -> sender is a peer? ->
//       decap/validate -> inner addresses ours? -> coalesce TCP -> TUN writev
//
// Why this shape: flannel's udp proxy moves one packet per syscall on one
// thread. Batching both sides and the kernel's offloads (TUN TSO/USO via
// IFF_VNET_HDR, UDP_SEGMENT, UDP_GRO) move ~64 KB per syscall instead. The
// rest is about the copies and the wake-ups a TUN data plane adds to what
// the kernel's vxlan does (measured in bench/README.md): segments
// are sent from where the TUN read put them, batches are capped in bytes so
// they stay in L2, and on a machine with few CPUs one thread serving both
// directions saves every TCP ACK a cross-thread wake-up. Each of these is an
// option below, so the bench can show before and after in one run.
//
// Packet threads never throw and never call into JS: everything they
// decide is counted. A fatal error is recorded and stops both directions;
// the control layer polls for it (stats().fatalError). Stop is flag +
// eventfd wake + join.
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
#include "core/rx_path.h"
#include "core/tun.h"
#include "core/tx_path.h"
#include "core/udp_socket.h"

namespace weft {

struct EngineConfig {
  Format format = Format::vxlan;
  std::string tun_name;
  uint32_t mtu = 1450;        // the TUN's MTU: largest inner packet
  uint32_t local_ip = 0;      // host order; the UDP socket binds here
  uint16_t port = 0;           // the backend's port; the control layer always says (src/defaults.ts)
  uint32_t vni = 1;
  Mac local_mac{};            // our VtepMAC (vxlan)
  unsigned batch = 64;        // packets per syscall batch
  int socket_buffer = 4 << 20;
  // A drain stops reading once it holds this many bytes, so what it read
  // is still in L2 when it is checksummed and sent (64 super-packets of
  // 64 KiB are 4 MiB); rx asks for as many datagrams as fit. 0: no cap,
  // `batch` packets however large.
  size_t batch_bytes = 512 << 10;
  // Segments of a super-packet go out as a header block and an iovec into
  // the TUN buffer, one sendmmsg per drain. Off: each payload is copied
  // into a segment buffer, one sendmmsg per super-packet.
  bool zero_copy = true;
  // Plain packets to one peer that encapsulate to the same size go out as
  // one UDP_SEGMENT message. Off: one datagram per packet.
  bool send_runs = true;
  // 1: one thread ("weft-io") serves both directions; 2: "weft-tx" and
  // "weft-rx"; 0: one where this process may run on 2 CPUs or fewer, else
  // two. One thread saves a wake-up per ACK and per reply, and measured
  // 5-15 % less engine CPU per GB on 2 CPUs; two let both directions run
  // at once where there are CPUs for it.
  unsigned threads = 0;
  // The TUN's transmit queue, in packets. The kernel's vxlan has none: the
  // sender's own context carries each packet through. A TUN holds packets
  // for a thread that a busy 2-CPU node keeps off the CPU for milliseconds,
  // and the kernel's 500 is 7 ms of 64-byte packets at 70 kpps. 0 keeps
  // the kernel's default.
  unsigned tun_queue = 1000;
  // After the last packet, keep polling this long (yielding to anything
  // else runnable) before sleeping: a reply that comes back within it costs
  // no wake-up. 0: sleep at once. Off by default: on 2 CPUs the spinning
  // engines take the CPU the pods need to answer (bench/README.md).
  unsigned busy_poll_us = 0;
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
  void stop();  // idempotent; joins the threads
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
  // Thread bodies: one direction, or both in turn.
  void run_tx();
  void run_rx();
  void run_both();
  // Waits until one of fds (count <= 2) is readable or stop is signalled;
  // false when stopping.
  bool wait_readable(const int* fds, int count);
  // Spins (poll without sleeping) while the busy-poll window since
  // last_work lasts; true as soon as one of fds is readable.
  bool busy_poll(const int* fds, int count, uint64_t last_work_ns);
  void fail(const char* what, int err);
  void wake_all();

  EngineConfig cfg_;
  Tun tun_;
  UdpSocket sock_;
  Fd wake_;  // eventfd, written once by stop()
  FibTable fib_;
  Counters counters_;
  std::unique_ptr<TxPath> tx_;
  std::unique_ptr<RxPath> rx_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::thread threads_[2];
  mutable std::mutex fatal_mu_;
  std::string fatal_;  // guarded by fatal_mu_; first failure wins
};

}  // namespace weft
