// Microbenchmarks of the packet core, run natively so the JS call costs
// nothing per packet (bench/micro.ts drives them through the addon). Bench
// code only: it builds synthetic packets the way the engine lays them out
// and runs one core function over them in a loop; it is not on any path
// the engine takes, and lives apart from native/core for that reason.
//
//   encap, decap   one batch of `size`-byte inner packets, headroom in front
//   rx, rx-strict  decap plus the inner-address check against a FIB of 256
//                  peers (rx-strict adds the source check: a FIB lookup)
//   csum-portable, csum-avx2
//                  the Internet checksum of `size` bytes, each implementation
//   segment-copy, segment-headers
//                  a 64 KB TCP super-packet cut at MSS `size`: payloads
//                  copied into segments (the engine's zero_copy off), or
//                  header blocks only (zero_copy on)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/encap.h"
#include "core/fib.h"

namespace weft::bench {

class CoreBench {
 public:
  // Throws std::invalid_argument naming what is wrong.
  CoreBench(const std::string& op, Format format, uint32_t size, uint32_t batch);
  // Runs the op over the batch `iterations` times; returns how many items
  // passed (so the work cannot be optimised away, and a bench of the drop
  // path shows itself).
  uint64_t run(uint32_t iterations);
  // Items one run(1) processes.
  uint32_t batch() const { return batch_; }

 private:
  enum class Op { encap, decap, rx, rx_strict, csum_portable, csum_avx2, segment_copy, segment_headers };
  uint64_t run_packets(uint32_t iterations);

  Op op_;
  Format format_;
  uint32_t size_, batch_;
  size_t stride_ = 0;
  std::vector<uint8_t> bufs_;
  std::vector<uint8_t> out_;
  InnerRule rule_;
  Fib fib_;
  Mac local_{}, peer_{};
};

}  // namespace weft::bench
