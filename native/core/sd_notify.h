// systemd's readiness protocol (sd_notify(3)): one datagram, "READY=1", to
// the AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET, so a Type=notify
// unit written for flanneld (which sends it once its subnet file is
// written) starts weft the same way. Node has no unix datagram sockets:
// this is the one syscall it needs.
#pragma once

#include <string>

namespace weft {

// Sends `message` to the socket at `path`: a file path, or an abstract name
// written with a leading '@' as systemd does. Throws SysError naming the
// socket (ENAMETOOLONG for a path that cannot fit sockaddr_un).
void sd_notify_send(const std::string& path, const std::string& message);

}  // namespace weft
