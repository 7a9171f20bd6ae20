// Helpers shared by the libFuzzer targets in this folder.
//
// Each target feeds one parser of bytes that come from outside (the
// underlay, the TUN, the kernel's netlink) and then checks what the parser
// promised, not only that it did not crash: ASan and UBSan catch the bad
// reads and writes, FUZZ_CHECK catches wrong answers. The checksum code here
// is written apart from the core's, so a bug there cannot hide itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

// An invariant the code under test promised; abort() makes libFuzzer keep
// the input as a crash.
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

namespace fuzz {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t be24(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }
inline uint32_t be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }

// One's-complement sum, folded to 16 bits; a region whose checksum field
// is right sums to 0xffff.
inline uint32_t ones_sum(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i < len; i++) sum += (i & 1) ? p[i] : uint32_t{p[i]} << 8;
  return sum;
}
inline uint16_t ones_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The IPv4 header checksum of pkt (ihl bytes) verifies.
inline bool ipv4_csum_ok(const uint8_t* ip, size_t ihl) { return ones_fold(ones_sum(ip, ihl)) == 0xffff; }

// The TCP or UDP checksum over the l4 bytes after an IPv4 header verifies.
inline bool l4_csum_ok(const uint8_t* ip, size_t ihl, size_t l4_len) {
  uint32_t pseudo = ones_sum(ip + 12, 8) + ip[9] + static_cast<uint32_t>(l4_len);
  return ones_fold(ones_sum(ip + ihl, l4_len, pseudo)) == 0xffff;
}

// What a receiver should make of the TCP/UDP checksum of an IPv4 packet
// of len bytes (its total length, header already checked), read apart
// from the core: none when there is no whole TCP/UDP header to check (or a
// fragment, or a UDP length the kernel would refuse); valid when it sums
// right (UDP: also when 0, sent without one); partial when it does not and
// holds the folded pseudo-header sum, as a sender's offload leaves it.
enum class Csum { none, valid, partial, bad };
inline Csum l4_csum_class(const uint8_t* ip, size_t len) {
  uint8_t proto = ip[9];
  if ((proto != 6 && proto != 17) || (be16(ip + 6) & 0x3fff) != 0) return Csum::none;
  size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  if (len < ihl + (proto == 6 ? 20 : 8)) return Csum::none;
  size_t l4 = len - ihl;
  if (proto == 17) {
    size_t ulen = be16(ip + ihl + 4);
    if (ulen < 8 || ulen > l4) return Csum::none;
    l4 = ulen;
  }
  uint16_t field = be16(ip + ihl + (proto == 6 ? 16 : 6));
  if (proto == 17 && field == 0) return Csum::valid;
  if (l4_csum_ok(ip, ihl, l4)) return Csum::valid;
  uint32_t pseudo = ones_sum(ip + 12, 8) + proto + static_cast<uint32_t>(l4);
  return field == ones_fold(pseudo) ? Csum::partial : Csum::bad;
}

// A heap buffer of exactly `cap` usable bytes followed by a guard of known
// bytes: a write past cap either lands in the guard (caught by intact()) or
// past the allocation (caught by ASan).
class Guarded {
 public:
  static constexpr size_t kGuard = 64;
  static constexpr uint8_t kFill = 0xa5;
  explicit Guarded(size_t cap) : cap_(cap), buf_(new uint8_t[cap + kGuard]) {
    std::memset(buf_.get() + cap, kFill, kGuard);
  }
  uint8_t* data() { return buf_.get(); }
  size_t cap() const { return cap_; }
  bool intact() const {
    for (size_t i = 0; i < kGuard; i++) {
      if (buf_[cap_ + i] != kFill) return false;
    }
    return true;
  }

 private:
  size_t cap_;
  std::unique_ptr<uint8_t[]> buf_;
};

// Reads every byte of a span so ASan sees the whole range a result claims
// (a result pointing past its buffer is then a report, not a silent pass).
// memcpy, because ASan checks its whole source range in one go.
inline void touch(const uint8_t* p, size_t len) {
  static std::vector<uint8_t> sink;
  if (sink.size() < len) sink.resize(len);
  if (len) std::memcpy(sink.data(), p, len);
}

}  // namespace fuzz
