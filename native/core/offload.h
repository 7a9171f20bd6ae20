// Offloads: the TUN hands us TCP super-packets (IFF_VNET_HDR + TSO) and
// takes them back, and the UDP socket sends and receives runs of datagrams
// in one call (UDP_SEGMENT, UDP_GRO). The kernel interfaces are slow per
// packet, not per byte, so the engine moves ~64 KB per syscall instead of
// one MTU. This file is the pure part: virtio-net headers, checksum
// completion, segmentation of a super-packet into wire packets, and
// coalescing of received TCP segments back into one super-packet. It takes
// byte spans and never trusts a length it has not checked.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/counters.h"

namespace weft {

// struct virtio_net_hdr without mergeable buffers: what a TUN with
// IFF_VNET_HDR puts before every packet (host byte order on x86/arm64 LE).
constexpr size_t kVnetHdrLen = 10;
constexpr uint8_t kVnetFlagNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoUdpL4 = 5;  // VIRTIO_NET_HDR_GSO_UDP_L4 (USO), Linux 6.2+
constexpr uint8_t kGsoEcn = 0x80;

// At most this many datagrams in one UDP_SEGMENT send or GSO packet.
constexpr unsigned kMaxSegments = 64;
// The largest UDP payload one IPv4 send may carry.
constexpr size_t kMaxUdpPayload = 65507;

struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = kGsoNone;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};

VnetHdr read_vnet_hdr(const uint8_t* p);
void write_vnet_hdr(uint8_t* p, const VnetHdr& h);

// Fills in a checksum the kernel left partial (NEEDS_CSUM): the field at
// csum_start + csum_offset holds the pseudo-header sum. False when the
// offsets do not fit in len. A result of 0 is written as 0xffff (the same
// value in one's complement), as the kernel does: 0 means "none" to UDP.
bool complete_checksum(uint8_t* pkt, size_t len, size_t csum_start, size_t csum_offset);

// What the TCP or UDP checksum of a received IPv4 packet says. A kernel
// peer whose device offloads checksums (a vxlan device on a veth, in kind
// and other container-based nodes) sends it partial: the field holds the
// folded pseudo-header sum for a NIC that never runs. The kernel's own
// receiver trusts such a packet from a veth; a userspace receiver must say
// so itself, with a virtio-net header, or finish the sum.
enum class L4Csum : uint8_t {
  none,       // not TCP/UDP, a fragment, or too short for its header
  unchecked,  // not the partial pattern; not summed (verify was false)
  valid,      // sums correctly (or UDP sent without a checksum)
  partial,    // holds the pseudo-header sum and does not sum correctly
  bad,        // summed, and wrong
};
// pkt: an IPv4 packet that passed check_ipv4, len its total length. Sums
// the packet when verify is set or when the field holds the partial
// pattern (to tell a partial packet from a valid one that matches by
// chance, 1 in 65535).
L4Csum inspect_l4_checksum(const uint8_t* pkt, size_t len, bool verify);
// Finishes, in place, a checksum inspect_l4_checksum called partial.
void complete_l4_checksum(uint8_t* pkt, size_t len);
// Where a TCP or UDP packet's checksum field is, from the start of its L4
// header (virtio-net's csum_offset).
inline size_t l4_checksum_offset(uint8_t proto) { return proto == 6 ? 16 : 6; }

// Where gso_segment put its packets: packet i starts at
// out + lead + i * stride (stride = lead + seg_len), all seg_len long but
// the last, which is last_len long. The `lead` bytes before each packet are
// left for the caller's encapsulation headers, so the run of datagrams can
// go out as one UDP_SEGMENT send. Each packet's IPv4 + TCP/UDP headers are
// its first hdr_len bytes.
//
// gso_segment_headers writes only the headers: block i at
// out + i * stride (stride = lead + hdr_len) holds lead bytes for the
// encapsulation and packet i's headers, and packet i's payload is left
// where it is, in the super-packet (segment_payload). The datagram is then
// sent as two iovecs, and the payload is never copied in userspace: the
// kernel's copy into its buffer is the only one.
struct Segments {
  Counter verdict = Counter::tx_packets;
  unsigned count = 0;
  size_t seg_len = 0;
  size_t last_len = 0;
  size_t stride = 0;
  size_t hdr_len = 0;
};

// Splits a super-packet (IPv4 + TCP for kGsoTcpV4, IPv4 + UDP for
// kGsoUdpL4) of len bytes into packets of at most hdr + gso_size bytes with
// correct IPv4 and TCP/UDP headers and full checksums. Anything else
// (no GSO type, a protocol that does not match it, bad lengths, no room in
// out) is tx_drop_bad_gso; a plain packet with NEEDS_CSUM is for
// complete_checksum.
Segments gso_segment(const VnetHdr& h, const uint8_t* pkt, size_t len, uint8_t* out, size_t out_cap, size_t lead);
Segments gso_segment_headers(const VnetHdr& h, const uint8_t* pkt, size_t len, uint8_t* out, size_t out_cap, size_t lead);

// Packet i's payload after gso_segment_headers split pkt into s.
inline iovec segment_payload(const Segments& s, const uint8_t* pkt, unsigned i) {
  size_t mss = s.seg_len - s.hdr_len;
  size_t len = (i + 1 < s.count ? s.seg_len : s.last_len) - s.hdr_len;
  return iovec{const_cast<uint8_t*>(pkt + s.hdr_len + i * mss), len};
}

// One thing to write to the TUN: a virtio-net header and the packet as
// iovecs (header bytes, then payload slices pointing into the rx buffers).
struct TunWrite {
  uint8_t vnet[kVnetHdrLen] = {};
  size_t first_iov = 0;  // into Coalescer::iovs()
  size_t iov_count = 0;
  size_t bytes = 0;      // the packets' bytes as they arrived (for counters)
  unsigned segments = 1;
};

// Coalesces consecutive in-order TCP segments of one flow (same addresses,
// ports, ACK, window, options; ACK-only flags; equal payloads but the last)
// into one TSO super-packet for the TUN, as the kernel's GRO would. Like
// GRO, it merges only segments whose checksum is right (or partial, which
// the kernel accepts from a veth too): the super-packet's checksum is left
// for the kernel to compute afresh, so a segment corrupted on the underlay
// (VXLAN has no outer checksum) would otherwise be delivered as good.
// Every other packet passes through unchanged for the kernel to judge; a
// partial one with a NEEDS_CSUM header, so the kernel completes it.
// Packets are not copied: outputs point at them, so they must stay put
// until the outputs are written.
class Coalescer {
 public:
  void reset();
  // pkt: a decapsulated, validated IPv4 packet (check_ipv4 passed), len its
  // total length. Returns what its checksum said (partial: to be counted).
  L4Csum add(const uint8_t* pkt, size_t len);
  // pkt: a TCP super-packet decap took whole (DecapResult::super_packet).
  // Written out as TSO for the TUN to cut to max_inner, only when its
  // checksum is valid or partial (the return value says; anything else is
  // the caller's to drop).
  L4Csum add_super(const uint8_t* pkt, size_t len, size_t max_inner);
  // Closes every open flow. Outputs keep the order packets of a flow came in.
  void finish();
  const std::vector<TunWrite>& writes() const { return writes_; }
  const std::vector<iovec>& iovs() const { return iovs_; }

 private:
  // At most this many flows are open at once; past it the oldest is
  // written out. Bounds the per-packet flow search under a flood.
  static constexpr size_t kMaxOpenFlows = 16;

  struct Flow {
    const uint8_t* first = nullptr;  // its headers lead the output
    size_t hdr_len = 0;              // IPv4 + TCP header bytes
    size_t seg_payload = 0;          // the first segment's payload: the MSS
    size_t total_payload = 0;
    uint32_t next_seq = 0;
    bool closed = false;             // a short or PSH segment ended it
    bool psh = false;
    bool first_partial = false;      // written alone, the first needs NEEDS_CSUM
    uint64_t opened = 0;             // order of opening, for eviction
    std::vector<iovec> payloads;     // capacity kept across batches
  };
  void emit_passthrough(const uint8_t* pkt, size_t len, bool partial);
  void emit_flow(size_t i);  // writes flow i out and frees its slot
  // A TSO write: a copy of pkt's hdr_len header bytes (lengths and IPv4
  // checksum set for total, TCP checksum left partial), then payloads.
  void emit_tso(const uint8_t* first, size_t hdr_len, size_t total, uint16_t gso_size, bool psh,
                const iovec* payloads, size_t count, unsigned segments, size_t bytes);
  int find_flow(const uint8_t* pkt) const;

  Flow flows_[kMaxOpenFlows];
  size_t open_ = 0;  // flows_[0, open_) are open
  uint64_t opened_ = 0;
  std::vector<TunWrite> writes_;
  std::vector<iovec> iovs_;
  std::vector<uint8_t> headers_;  // rewritten headers of coalesced packets
  // iovs_ entries that point into headers_, fixed up by finish() because
  // headers_ may move while it grows: (iov index, offset in headers_).
  std::vector<std::pair<size_t, size_t>> header_iovs_;
};

}  // namespace weft
