#include "core/udp_socket.h"

#include <arpa/inet.h>
#include <netinet/udp.h>

#include <cerrno>
#include <string>

#include "core/addr.h"
#include "core/sys_error.h"

namespace weft {

static std::string endpoint(uint32_t ip, uint16_t port) { return format_ip4(ip) + ":" + std::to_string(port); }

static void size_buffer(int fd, int force_opt, int opt, int bytes) {
  // SO_*BUFFORCE ignores the sysctl cap but needs CAP_NET_ADMIN; fall back.
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

UdpSocket::UdpSocket(uint32_t local_ip, uint16_t port, int buffer_bytes) : port_(port) {
  // Blocking socket: sends wait for buffer space (backpressure instead of
  // drops); receives use MSG_DONTWAIT after poll().
  fd_ = Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw SysError(errno, "socket udp");
  if (buffer_bytes > 0) {
    size_buffer(fd_.get(), SO_SNDBUFFORCE, SO_SNDBUF, buffer_bytes);
    size_buffer(fd_.get(), SO_RCVBUFFORCE, SO_RCVBUF, buffer_bytes);
  }
  // A send waits at most this long for buffer space, so stop() is never
  // held up by a full socket; the datagram is then counted as a send error.
  timeval send_wait{0, 100 * 1000};
  setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &send_wait, sizeof send_wait);
  // See the note in udp_socket.h; OMIT needs Linux 3.15.
  int pmtu = IP_PMTUDISC_OMIT;
  if (setsockopt(fd_.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) {
    throw SysError(errno, "setsockopt IP_MTU_DISCOVER IP_PMTUDISC_OMIT");
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(local_ip);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    throw SysError(errno, "bind udp " + endpoint(local_ip, port));
  }
}

bool UdpSocket::enable_gro() {
  int on = 1;
  return setsockopt(fd_.get(), IPPROTO_UDP, UDP_GRO, &on, sizeof on) == 0;
}

int UdpSocket::recv_batch(mmsghdr* msgs, unsigned n) {
  for (;;) {
    int got = ::recvmmsg(fd_.get(), msgs, n, MSG_DONTWAIT, nullptr);
    if (got >= 0) return got;
    if (errno == EINTR) continue;
    // EAGAIN: nothing waiting. Other errors (a queued ICMP error) are
    // per-datagram conditions, not the socket failing: report none.
    return 0;
  }
}

unsigned UdpSocket::send_batch(mmsghdr* msgs, unsigned n, int* errs) {
  for (unsigned i = 0; i < n; i++) {
    msgs[i].msg_len = 0;  // stays 0 for a refused one
    errs[i] = 0;
  }
  unsigned done = 0, sent = 0;
  while (done < n) {
    int got = ::sendmmsg(fd_.get(), msgs + done, n - done, 0);
    if (got > 0) {
      done += static_cast<unsigned>(got);
      sent += static_cast<unsigned>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    // msgs[done] was refused (EINVAL for a UDP_SEGMENT run the route cannot
    // take, ENETUNREACH, EAGAIN after the send timeout, ...): skip it.
    errs[done++] = got < 0 ? errno : EIO;
  }
  return sent;
}

}  // namespace weft
