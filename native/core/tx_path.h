// The outbound path: TUN -> peers. Owned and run by one engine thread.
//
// One drain, step by step: read a packet from the TUN (with offload, a TCP
// or UDP super-packet behind a virtio-net header) into the next free place
// of the arena; drop our own datagrams that came back (a peer routed into
// the overlay); look the destination's peer up in the FIB; encapsulate in
// place (headroom), or cut a super-packet into header blocks whose
// payloads stay in the arena (zero copy) and encapsulate those; queue the
// datagrams, a run as one UDP_SEGMENT message (resent one by one if the
// kernel refuses it). Then the next packet, while it is still in cache,
// until the TUN is empty, `batch` packets were read or `batch_bytes` are
// held; then everything goes out in one sendmmsg. Plain packets to one
// peer that encapsulate to the same size (a UDP flow, a run of TCP ACKs)
// go out as one UDP_SEGMENT message too (send_runs): the kernel then takes
// them through its stack once, and a receiver with UDP_GRO (weft) gets
// them in one piece; a kernel vxlan peer gets them one by one, as always.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "core/counters.h"
#include "core/encap.h"
#include "core/fib.h"
#include "core/offload.h"
#include "core/udp_socket.h"

namespace weft {

struct EngineConfig;

// Room in front of every packet for the VXLAN and Ethernet headers, so
// encapsulation writes headers and never moves the payload; 64 keeps the
// inner packet cache-line aligned (the arena is page-aligned).
constexpr size_t kHeadroom = 64;
static_assert(kHeadroom >= kVxlanEncap, "headroom must hold the vxlan encapsulation");
constexpr size_t kMaxPacket = 65535;  // largest IPv4 packet the TUN can hand us

class TxPath {
 public:
  TxPath(const EngineConfig& cfg, int tun_fd, UdpSocket& sock, Counters& counters);

  // One drain (above), reading the FIB as `reader`; the reader is idle
  // again when it returns and while it sends. Returns the packets read, or
  // -errno when the TUN failed in a way the engine cannot go on from.
  int drain(FibTable& fibs, int reader);

 private:
  struct OutMsg {
    sockaddr_in dst;
    size_t iov_first, iov_count;
    unsigned packets;  // inner packets it carries
    size_t bytes;      // their inner bytes
    size_t wire;       // its UDP payload bytes
    uint16_t seg;      // UDP_SEGMENT size, 0 for a plain datagram
    bool open;         // plain datagrams that one more of the same size may join
  };

  void handle(uint8_t* slot, size_t len);
  // A TUN super-packet (GSO): false when it was dropped (and counted).
  void handle_gso(const VnetHdr& vh, uint8_t* inner, size_t len);
  void queue_run(const Segments& sg, uint8_t* blocks, const uint8_t* payload_src, const Peer& peer);
  bool room(size_t msgs, size_t iovs) const;
  void queue(const Peer& peer, size_t iov_first, size_t iov_count, unsigned packets, size_t bytes, uint16_t seg);
  // One encapsulated packet; with send_runs it joins the message before it
  // when the kernel can send both as one UDP_SEGMENT run.
  void queue_plain(const Peer& peer, uint8_t* data, size_t len, size_t inner_len);
  void flush();
  void send_one_by_one(const OutMsg& m);

  const EngineConfig& cfg_;
  const int tun_;
  UdpSocket& sock_;
  Counters& counters_;
  const EncapParams ep_;
  const size_t vnet_;  // virtio-net header bytes before each packet (offload) or 0
  const size_t lead_;  // encapsulation bytes before each inner packet
  const size_t slot_;  // largest room one read needs
  const size_t cap_;   // a drain stops reading past this many arena bytes
  const size_t max_msgs_, max_iov_;

  Arena arena_;   // the packets as read, each at a cache line + kHeadroom
  Arena blocks_;  // header blocks of zero-copy segments
  Arena segs_;    // copied segments (zero_copy off)
  size_t blocks_used_ = 0;

  std::vector<OutMsg> out_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::vector<Control> ctrl_;
  std::vector<int> errs_;

  FibTable* fibs_ = nullptr;  // during a drain
  int reader_ = 0;
  const Fib* fib_ = nullptr;  // entered; nullptr while idle
};

}  // namespace weft
