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
struct DecapResult {
  Counter verdict;
  size_t inner_off;
  size_t inner_len;
};

DecapResult decap(const DecapParams& p, const uint8_t* payload, size_t len);

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

// Validates what the TUN handed us before it is looked up and encapsulated.
Counter check_tx_ipv4(const uint8_t* pkt, size_t len);

// RFC 1071 Internet checksum over len bytes (used by tests and by TTL code).
uint16_t inet_checksum(const uint8_t* data, size_t len);

}  // namespace weft
