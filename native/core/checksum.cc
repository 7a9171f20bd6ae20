#include "core/checksum.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace weft {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checksum adds native little-endian words");

// Sum of the native 32-bit words of len bytes (a short tail as a shorter
// word), exact for any len a packet can have (no accumulator comes near 2^64).
inline uint64_t sum_words(const uint8_t* p, size_t len) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (; len >= 16; p += 16, len -= 16) {
    uint32_t w[4];
    std::memcpy(w, p, 16);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
  }
  if (len >= 8) {
    uint32_t w[2];
    std::memcpy(w, p, 8);
    a += w[0];
    b += w[1];
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    c += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    d += w;
    p += 2;
    len -= 2;
  }
  if (len) a += *p;  // a last odd byte: the high byte of a big-endian word, the low of a native one
  return (a + b) + (c + d);
}

// Folds a sum of native words to 16 bits and swaps it into the sum of the
// same bytes as big-endian words (RFC 1071, 2(B)), added to sum.
inline uint32_t finish(uint64_t s, uint32_t sum) {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  uint16_t native = csum_fold(static_cast<uint32_t>(s));
  return sum + static_cast<uint16_t>((native >> 8) | (native << 8));
}

#if defined(__x86_64__)
// 64 bytes a step: each 32-bit word widened to a 64-bit lane (unpack with
// zero) and added; two accumulators so the adds do not wait on each other.
__attribute__((target("avx2"))) uint32_t sum_avx2(const uint8_t* p, size_t len, uint32_t sum) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc0 = zero, acc1 = zero;
  for (; len >= 64; p += 64, len -= 64) {
    __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v0, zero));
    acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v0, zero));
    acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v1, zero));
    acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v1, zero));
  }
  __m256i acc = _mm256_add_epi64(acc0, acc1);
  __m128i half = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  uint64_t lanes[2];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), half);
  return finish(lanes[0] + lanes[1] + sum_words(p, len), sum);
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
const bool kHaveAvx2 = cpu_has_avx2();
#else
constexpr bool kHaveAvx2 = false;
#endif

// Below this the AVX2 loop would not run a single step.
constexpr size_t kWideMin = 64;

}  // namespace

uint32_t csum_partial_portable(const uint8_t* data, size_t len, uint32_t sum) {
  return finish(sum_words(data, len), sum);
}

#if defined(__x86_64__)
uint32_t (*const csum_partial_avx2)(const uint8_t*, size_t, uint32_t) = kHaveAvx2 ? sum_avx2 : nullptr;
#else
uint32_t (*const csum_partial_avx2)(const uint8_t*, size_t, uint32_t) = nullptr;
#endif

CsumImpl csum_impl() { return kHaveAvx2 ? CsumImpl::avx2 : CsumImpl::portable; }

uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t sum) {
#if defined(__x86_64__)
  if (len >= kWideMin && kHaveAvx2) return sum_avx2(data, len, sum);
#endif
  return finish(sum_words(data, len), sum);
}

}  // namespace weft
