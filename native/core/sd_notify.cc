#include "core/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "core/fd.h"
#include "core/sys_error.h"

namespace weft {

void sd_notify_send(const std::string& path, const std::string& message) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  // An abstract name has no NUL terminator: its length is the address length.
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    throw SysError(ENAMETOOLONG, "notify socket " + path);
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (path[0] == '@') sa.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw SysError(errno, "socket unix dgram");
  ssize_t n;
  do {
    n = ::sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SysError(errno, "sendto notify socket " + path);
}

}  // namespace weft
