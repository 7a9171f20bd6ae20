// Packet buffers for the engine's paths: page-aligned (so the headroom in
// front of each packet really is cache-line aligned; new[] gives 16 bytes)
// and left uninitialised, so pages the traffic never reaches cost no RSS.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace weft {

constexpr size_t kCacheLine = 64;
constexpr size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

class Arena {
 public:
  explicit Arena(size_t bytes) : size_(align_up(bytes ? bytes : 1, 4096)) {
    p_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, size_)));
    if (!p_) throw std::bad_alloc();
  }
  uint8_t* data() const { return p_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  size_t size_;
  std::unique_ptr<uint8_t, Free> p_;
};

// Control-message room for one UDP_SEGMENT (u16) or UDP_GRO (int) value.
struct alignas(cmsghdr) Control {
  uint8_t bytes[CMSG_SPACE(sizeof(int))];
};

}  // namespace weft
