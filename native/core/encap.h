// Encapsulation and decapsulation for flannel's two wire formats.
//
//   udp:   [ inner IPv4 packet ]                         (flannel's proxy.c)
//   vxlan: [ VXLAN 8 | Ethernet 14 | inner IPv4 packet ] (RFC 7348, as Linux)
//
// The outer IPv4 and UDP headers belong to the kernel's UDP socket. These
// functions only read and write the UDP payload, take a byte span, and return
// a verdict: they are pure, so unit tests and fuzzers call them directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/counters.h"
#include "core/fib.h"
#include "core/packet.h"

namespace weft {

struct EncapParams {
  Format format = Format::vxlan;
  uint32_t vni = 1;
  Mac local_mac{};
};

struct DecapParams {
  Format format = Format::vxlan;
  uint32_t vni = 1;
  Mac local_mac{};
  size_t max_inner = 1500;  // the TUN MTU: a larger inner packet is dropped
};

// Verdict is Counter::rx_packets when the packet is good; otherwise the
// drop reason. inner_off/inner_len locate the inner IPv4 packet in the input
// (trailing bytes beyond its total length, e.g. Ethernet padding, cut off).
//
// super_packet: the inner packet is larger than max_inner, and is a whole
// TCP segment with payload whose headers leave room for some of it in
// max_inner. A kernel vxlan peer on a veth sends these: its TCP
// super-packet crosses the veth unsegmented (GSO) and a plain UDP socket
// receives it as one datagram, up to 64 KB. The caller must cut it to
// max_inner (or have the TUN do so) and must not take it unless its
// checksum is right or partial.
struct DecapResult {
  Counter verdict;
  size_t inner_off;
  size_t inner_len;
  bool super_packet = false;
};

DecapResult decap(const DecapParams& p, const uint8_t* payload, size_t len);

// Which decapsulated packets a node takes. The outer source says only which
// peer a datagram claims to come from, and anyone on the underlay can forge
// it (and a VtepMAC is no secret), so the inner addresses are checked too.
struct InnerRule {
  uint32_t subnet = 0;  // our lease, host order, host bits zero
  uint8_t prefix_len = 0;
  // The inner source must lie in the subnet of the peer at the datagram's
  // outer source. Off by default: a node that routes outside traffic into
  // the overlay (an egress gateway) sends sources from no peer's subnet.
  bool strict_source = false;
};

// For an inner packet decap accepted, carried by a datagram from outer_src
// (host order): rx_packets; rx_drop_inner_dst when the destination is
// outside our subnet (which holds the TUN address, the subnet's first) or
// is its broadcast address; with strict_source, rx_drop_inner_src when fib
// does not route the inner source to the peer at outer_src.
Counter check_inner(const InnerRule& r, const uint8_t* inner, uint32_t outer_src, const Fib& fib);

// Checks an IPv4 header as decap does; on success *total is its total length.
// Verdict is rx_packets or an rx_drop_* reason.
Counter check_ipv4(const uint8_t* pkt, size_t len, size_t* total);

// Encapsulates the inner packet at buf[headroom, headroom+len) in place:
// writes the VXLAN and Ethernet headers into the headroom (so the payload is
// never copied) or, for udp, decrements the TTL. On success returns
// Counter::tx_packets and sets *out_off/*out_len to the UDP payload;
// otherwise the tx_drop_* reason. Needs headroom >= encap_len(format).
Counter encap(const EncapParams& p, const Mac& peer_mac, uint8_t* buf, size_t headroom, size_t len,
              size_t* out_off, size_t* out_len);

// The inner destination address (host order) of a packet that encap accepted
// or that the tx path is about to look up; pkt has at least 20 bytes.
inline uint32_t ipv4_dst(const uint8_t* pkt) { return load_be32(pkt + 16); }
inline uint32_t ipv4_src(const uint8_t* pkt) { return load_be32(pkt + 12); }

// Validates what the TUN handed us before it is looked up and encapsulated.
Counter check_tx_ipv4(const uint8_t* pkt, size_t len);

// True when a packet from the TUN is one of our own datagrams: IPv4 UDP,
// not a later fragment, from local_ip (any address when 0) and our port.
// That happens when a peer's public IP is routed into the overlay; sending
// it again would loop forever, each pass under a fresh outer TTL. Safe on
// any bytes; a super-packet is checked before it is segmented.
bool is_own_datagram(const uint8_t* pkt, size_t len, uint32_t local_ip, uint16_t port);

}  // namespace weft
