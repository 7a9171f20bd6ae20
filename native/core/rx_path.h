// The inbound path: peers -> TUN. Owned and run by one engine thread.
//
// One drain: receive a batch of messages (with UDP_GRO each may hold a run
// of datagrams from one sender); drop anything not from a current peer;
// split runs, validate and decapsulate every datagram, and drop an inner
// packet not for our subnet (or, strict, not from the sender's); then
// either write each inner packet to the TUN (a partial checksum completed)
// or, with offload, let the coalescer merge in-order TCP segments into
// super-packets and write those (a partial checksum marked NEEDS_CSUM). A
// kernel peer's TCP super-packet is cut to the MTU.
//
// A message can be 64 KiB (a GRO run, or a kernel peer's super-packet), so
// a batch of 64 can be 4 MiB, past L2 before it is checksummed and written.
// With batch_bytes the drain asks for as many messages as fit, judged by
// the largest one of the previous drain: 64 small datagrams, or 8 runs.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/counters.h"
#include "core/encap.h"
#include "core/fib.h"
#include "core/offload.h"
#include "core/udp_socket.h"

namespace weft {

struct EngineConfig;

constexpr size_t kMaxDatagram = 65536;  // past the largest UDP payload: nothing is cut

class RxPath {
 public:
  RxPath(const EngineConfig& cfg, int tun_fd, UdpSocket& sock, Counters& counters);

  // One drain (above), reading the FIB as `reader`, idle again on return.
  // Returns the messages received (0: none were waiting).
  int drain(FibTable& fibs, int reader);

 private:
  unsigned messages_to_ask() const;
  void deliver_super(const uint8_t* pkt, size_t len, size_t datagram);
  bool writev_tun(const iovec* v, int count);
  void write_tun(const iovec* v, int count, unsigned packets, size_t bytes);

  const EngineConfig& cfg_;
  const int tun_;
  UdpSocket& sock_;
  Counters& counters_;
  const DecapParams dp_;
  Arena bufs_;  // batch x kMaxDatagram; a message lands at its index's
  std::vector<iovec> iov_;
  std::vector<sockaddr_in> src_;
  std::vector<mmsghdr> msgs_;
  std::vector<Control> ctrl_;
  size_t largest_ = kMaxDatagram;  // the largest message of the last drain
  Coalescer coalescer_;
  std::vector<iovec> wv_;
  Arena pieces_;  // a kernel super-packet cut to the MTU (offload off)
};

}  // namespace weft
