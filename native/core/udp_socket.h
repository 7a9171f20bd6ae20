// The underlay UDP socket: bound to the node's address and the backend port,
// read and written in batches (recvmmsg/sendmmsg).
//
// Path MTU: like the kernel's vxlan device, the socket never sets DF and
// lets the kernel fragment a datagram larger than the interface's MTU
// (IP_PMTUDISC_OMIT). It also ignores ICMP "fragmentation needed": by
// default one such message, forged by anyone on the underlay or by a pod
// through the overlay, lowers the path MTU below our segment size, and
// the kernel then refuses every UDP_SEGMENT send to that peer for ten
// minutes. A smaller hop on the real path fragments our datagrams instead.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "core/fd.h"

namespace weft {

class UdpSocket {
 public:
  // local_ip in host order (0 = any). buffer_bytes sizes SO_SNDBUF/SO_RCVBUF
  // (forced past rmem_max/wmem_max where we are allowed to). Throws SysError
  // naming address and port (EADDRINUSE when taken, EADDRNOTAVAIL when the
  // address is not ours).
  UdpSocket(uint32_t local_ip, uint16_t port, int buffer_bytes);

  int fd() const { return fd_.get(); }
  uint16_t port() const { return port_; }
  // UDP_GRO: the kernel may hand us a run of same-sized datagrams from one
  // sender as one buffer, with the size in a cmsg. False if it refuses.
  bool enable_gro();

  // Receives up to n datagrams without blocking; returns how many (0 when
  // none are waiting). msgs[i].msg_len holds each length.
  int recv_batch(mmsghdr* msgs, unsigned n);
  // Sends n datagrams, blocking while the socket buffer is full. A datagram
  // the kernel refuses is skipped and left with msg_len 0 and its errno in
  // errs[i] (0 for one sent); returns how many were sent.
  unsigned send_batch(mmsghdr* msgs, unsigned n, int* errs);

 private:
  Fd fd_;
  uint16_t port_;
};

}  // namespace weft
