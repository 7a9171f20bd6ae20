// The Internet checksum (RFC 1071), the core's one implementation: IPv4
// headers, TCP/UDP checksums of segmented and coalesced packets, checksum
// completion. Every payload byte weft segments or coalesces is summed once,
// so this is on the per-byte path of both directions.
//
// Why it is shaped this way: the one's-complement sum does not depend on
// byte order (RFC 1071, 2(B)) and 2^16 = 1 (mod 0xffff), so native 32-bit
// words can be added into 64-bit accumulators with no carry handling at all
// (2^32 additions before one could overflow) and the result swapped once.
// That is four independent adds per 16 bytes for a scalar loop, and AVX2
// widens it to 32 bytes per step; the AVX2 version is picked at load time
// when the CPU has it (__builtin_cpu_supports), the portable one otherwise.
// The previous loop (one 64-bit add plus an end-around carry test per 8
// bytes, one dependency chain) ran at about a third of the AVX2 speed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

// One's-complement sum of len bytes read as big-endian 16-bit words (a last
// odd byte is the high byte of a word), added to sum; not folded, not
// complemented. Chunks may be summed apart and added, as long as each
// chunk starts at an even offset of the region being checksummed.
uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t sum = 0);

// Folds a sum to 16 bits (end-around carry), not complemented.
inline uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The value a checksum field holds for these bytes (with the field zero).
inline uint16_t inet_checksum(const uint8_t* data, size_t len) {
  return static_cast<uint16_t>(~csum_fold(csum_partial(data, len)));
}

// The implementations behind csum_partial, for tests and the microbenchmark;
// csum_partial_avx2 is nullptr where the CPU (or the build) has no AVX2.
enum class CsumImpl : uint8_t { portable, avx2 };
CsumImpl csum_impl();
uint32_t csum_partial_portable(const uint8_t* data, size_t len, uint32_t sum);
extern uint32_t (*const csum_partial_avx2)(const uint8_t* data, size_t len, uint32_t sum);

}  // namespace weft
