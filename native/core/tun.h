// A TUN device opened from /dev/net/tun. The device lives as long as the fd
// (it is not made persistent), so closing it removes the link and every
// route through it: nothing is left behind if the process dies.
#pragma once

#include <string>

#include "core/fd.h"

namespace weft {

struct TunOptions {
  std::string name;          // e.g. "flannel.1"; empty lets the kernel pick tunN
  bool vnet_hdr = false;     // IFF_VNET_HDR + TUNSETOFFLOAD: checksum, TSO4 and USO4
  // The device's transmit queue (packets the kernel holds for our reads);
  // 0 keeps the kernel's 500. See EngineConfig::tun_queue.
  unsigned queue_len = 0;
};

class Tun {
 public:
  // Throws SysError naming the device on failure (EBUSY when the name is taken).
  explicit Tun(const TunOptions& opts);

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  // With vnet_hdr: whether the kernel took USO4 (Linux 6.2+).
  bool uso() const { return uso_; }

 private:
  Fd fd_;
  std::string name_;
  bool uso_ = false;
};

}  // namespace weft
