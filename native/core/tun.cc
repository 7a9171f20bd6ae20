#include "core/tun.h"

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/sys_error.h"

namespace weft {

// TUN_F_USO4 and TUN_F_USO6 (Linux 6.2); older headers lack them, older
// kernels refuse them. The kernel turns on UDP segmentation offload only
// for both together (one alone is refused), though IPv6 never reaches us.
constexpr unsigned kTunUso = 0x20 | 0x40;

Tun::Tun(const TunOptions& opts) {
  if (opts.name.size() >= IFNAMSIZ) {
    throw SysError(ENAMETOOLONG, "tun " + opts.name + ": name longer than " + std::to_string(IFNAMSIZ - 1));
  }
  fd_ = Fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd_) throw SysError(errno, "open /dev/net/tun");

  ifreq ifr{};
  // IFF_NO_PI: packets are bare IP, no 4-byte protocol prefix.
  // IFF_TUN_EXCL: never attach to a leftover persistent device, which would
  // outlive us with our address and routes on it.
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL;
  if (opts.vnet_hdr) ifr.ifr_flags |= IFF_VNET_HDR;
  std::memcpy(ifr.ifr_name, opts.name.data(), opts.name.size());
  if (::ioctl(fd_.get(), TUNSETIFF, &ifr) < 0) {
    int err = errno;
    std::string name = opts.name.empty() ? std::string("(any)") : opts.name;
    // The kernel says EINVAL when the name belongs to a link of another kind.
    if (err == EINVAL && !opts.name.empty() && if_nametoindex(opts.name.c_str()) != 0) {
      throw SysError(EEXIST, "tun " + name + ": a link of another kind (not a TUN) has this name");
    }
    throw SysError(err, "tun " + name + ": TUNSETIFF");
  }
  name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  if (opts.vnet_hdr) {
    // Let the kernel hand us unchecksummed TCP super-packets (and UDP ones
    // where it can), instead of segmenting and checksumming them first.
    unsigned base = TUN_F_CSUM | TUN_F_TSO4;
    if (::ioctl(fd_.get(), TUNSETOFFLOAD, base | kTunUso) == 0) {
      uso_ = true;
    } else if (::ioctl(fd_.get(), TUNSETOFFLOAD, base) < 0) {
      throw SysError(errno, "tun " + name_ + ": TUNSETOFFLOAD");
    }
  }
  if (opts.queue_len) {
    // ip link set <tun> txqueuelen N: an ioctl on any socket names the device.
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq q{};
    std::memcpy(q.ifr_name, name_.data(), name_.size());
    q.ifr_qlen = static_cast<int>(opts.queue_len);
    if (!s || ::ioctl(s.get(), SIOCSIFTXQLEN, &q) < 0) throw SysError(errno, "tun " + name_ + ": set txqueuelen");
  }
}

}  // namespace weft
