// Wire constants and byte-order helpers shared by the packet core.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/addr.h"

namespace weft {

enum class Format : uint8_t { udp, vxlan };

constexpr size_t kIpv4MinHeader = 20;
constexpr size_t kUdpHeader = 8;
constexpr size_t kVxlanHeader = 8;
constexpr size_t kEthHeader = 14;
// Bytes of UDP payload in front of the inner IPv4 packet.
constexpr size_t kVxlanEncap = kVxlanHeader + kEthHeader;
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint32_t kVniMax = 0xffffff;

// What each format costs on the underlay; the TUN MTU is the link MTU minus this.
constexpr size_t overhead(Format f) {
  return kIpv4MinHeader + kUdpHeader + (f == Format::vxlan ? kVxlanEncap : 0);
}
constexpr size_t encap_len(Format f) { return f == Format::vxlan ? kVxlanEncap : 0; }

inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace weft
