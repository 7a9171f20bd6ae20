#include "core/addr.h"

#include <arpa/inet.h>

#include <cstring>

namespace weft {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool parse_mac(const std::string& s, Mac* out) {
  if (s.size() != 17) return false;
  Mac m{};
  for (size_t i = 0; i < m.size(); i++) {
    size_t at = i * 3;
    if (i < 5 && s[at + 2] != ':') return false;
    int hi = hex_digit(s[at]), lo = hex_digit(s[at + 1]);
    if (hi < 0 || lo < 0) return false;
    m[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *out = m;
  return true;
}

std::string format_mac(const Mac& m) {
  static const char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(17);
  for (size_t i = 0; i < m.size(); i++) {
    if (i) s += ':';
    s += hex[m[i] >> 4];
    s += hex[m[i] & 0xf];
  }
  return s;
}

std::optional<Ip4> parse_ip4(const std::string& s) {
  in_addr a;
  // inet_pton would stop at a NUL and take "10.0.0.1\0junk" for 10.0.0.1.
  if (s.find('\0') != std::string::npos || inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  Ip4 out;
  std::memcpy(out.data(), &a, 4);
  return out;
}

std::string format_ip4(const Ip4& a) {
  char buf[INET_ADDRSTRLEN];
  in_addr in;
  std::memcpy(&in, a.data(), 4);
  if (inet_ntop(AF_INET, &in, buf, sizeof buf) == nullptr) return "?";
  return buf;
}

std::string format_ip4(uint32_t host_order) {
  return format_ip4(Ip4{static_cast<uint8_t>(host_order >> 24), static_cast<uint8_t>(host_order >> 16),
                        static_cast<uint8_t>(host_order >> 8), static_cast<uint8_t>(host_order)});
}

}  // namespace weft
