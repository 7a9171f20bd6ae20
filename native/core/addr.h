// Link-layer and IPv4 addresses and their text forms, for every part of the
// core: the packet path keeps a peer's VtepMAC, netlink reads a link's MAC,
// and errors and the bindings print both. One type and one spelling each, so
// a MAC the engine prints is one netlink would print the same way.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace weft {

using Mac = std::array<uint8_t, 6>;

// An IPv4 address as its four bytes in network order ("10.244.3.0" is
// {10, 244, 3, 0}), as netlink carries it: no byte-order question. The packet
// path holds addresses as host-order uint32 instead (it compares and masks
// them); format_ip4 takes either.
using Ip4 = std::array<uint8_t, 4>;

// "aa:bb:cc:dd:ee:ff" (either case) -> Mac; false on anything else.
bool parse_mac(const std::string& s, Mac* out);
// Lowercase "aa:bb:cc:dd:ee:ff", as flannel publishes a VtepMAC.
std::string format_mac(const Mac& m);

// Strict dotted quad (inet_pton): "10.0.0.1" only, no "10.1" or octal.
std::optional<Ip4> parse_ip4(const std::string& s);
std::string format_ip4(const Ip4& a);
std::string format_ip4(uint32_t host_order);

}  // namespace weft
