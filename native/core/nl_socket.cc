#include "core/nl_socket.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/sys_error.h"

namespace weft::nl {

namespace {

// The kernel sizes a dump's datagrams by the largest buffer we have passed
// to recvmsg, capped a little under 32 KiB; start there so most dumps fit
// without the peek having to grow the buffer.
constexpr size_t kRxInitial = 32768;

}  // namespace

Socket::Socket() : seq_(static_cast<uint32_t>(std::time(nullptr))) {
  fd_ = Fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd_) throw SysError(errno, "socket(AF_NETLINK, NETLINK_ROUTE)");
  const int fd = fd_.get();
  // errno first: building the message may allocate. fd_ closes itself.
  auto fail = [](const char* call) {
    int err = errno;
    throw SysError(err, call);
  };
  int one = 1;
  // Both are best effort: a kernel without them still answers, only with
  // less to say (no ext-ack text) or more to read (our request echoed).
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // The kernel always answers; the timeout is only so that a bug here can
  // never hang the Node main thread for good.
  timeval tv{};
  tv.tv_sec = 10;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) fail("setsockopt(SO_RCVTIMEO)");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) fail("bind(AF_NETLINK)");
  socklen_t sl = sizeof sa;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &sl) < 0) fail("getsockname(AF_NETLINK)");
  port_ = sa.nl_pid;
  rx_.resize(kRxInitial);
}

size_t Socket::recv_datagram(const std::string& call) {
  for (;;) {
    sockaddr_nl sa{};
    iovec iov{rx_.data(), rx_.size()};
    msghdr mh{};
    mh.msg_name = &sa;
    mh.msg_namelen = sizeof sa;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    // Peek at the real size first so a large datagram grows the buffer
    // instead of being cut.
    ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_PEEK | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) throw SysError(ETIMEDOUT, call + " (no reply)");
      throw SysError(errno, call + " (recvmsg)");
    }
    if (static_cast<size_t>(n) > rx_.size()) {
      rx_.resize(static_cast<size_t>(n));
      continue;
    }
    iov = iovec{rx_.data(), rx_.size()};
    mh.msg_namelen = sizeof sa;
    mh.msg_flags = 0;
    n = ::recvmsg(fd_.get(), &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(errno, call + " (recvmsg)");
    }
    if (mh.msg_flags & MSG_TRUNC) throw SysError(EMSGSIZE, call + " (recvmsg)");
    if (sa.nl_pid != 0) continue;  // not from the kernel
    return static_cast<size_t>(n);
  }
}

std::vector<std::vector<uint8_t>> Socket::request_once(MsgBuilder& req, const std::string& call,
                                                       bool* interrupted) {
  if (!req.ok()) throw SysError(EMSGSIZE, call);
  nlmsghdr h;
  std::memcpy(&h, req.data(), sizeof h);
  const bool dump = (h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  const uint32_t seq = ++seq_;
  req.set_seq(seq);
  req.set_pid(0);
  if (!dump) req.add_flags(NLM_F_ACK);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = ::sendto(fd_.get(), req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                         sizeof kernel);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    throw SysError(errno, call + " (sendto)");
  }

  std::vector<std::vector<uint8_t>> out;
  for (;;) {
    size_t n = recv_datagram(call);
    MsgIter it(rx_.data(), n);
    Msg m;
    while (it.next(m)) {
      // A late answer to an earlier request on this socket: not ours.
      if (m.seq != seq || m.pid != port_) continue;
      if (m.flags & NLM_F_DUMP_INTR) *interrupted = true;
      if (m.type == NLMSG_NOOP) continue;
      if (m.type == NLMSG_OVERRUN) throw SysError(ENOBUFS, call);
      if (m.type == NLMSG_ERROR || m.type == NLMSG_DONE) {
        Ack ack;
        // An old kernel's NLMSG_DONE may carry no errno: that is success.
        if (!parse_ack(m, ack)) {
          if (m.type == NLMSG_ERROR) throw SysError(EPROTO, call + " (malformed ack)");
          ack = Ack{};
        }
        if (ack.err) throw SysError(ack.err, call, ack.msg);
        if (m.type == NLMSG_DONE || !dump) return out;
        continue;
      }
      // A dump's records, or a get's answer (its ack follows).
      out.emplace_back(m.data, m.data + m.len);
    }
    if (it.bad()) throw SysError(EPROTO, call + " (malformed reply)");
  }
}

std::vector<std::vector<uint8_t>> Socket::request(MsgBuilder& req, const std::string& call) {
  // A dump that raced with a change is marked; a few tries always settle on
  // a control plane that changes a route every few seconds at most.
  for (int attempt = 0; attempt < 4; attempt++) {
    bool interrupted = false;
    auto out = request_once(req, call, &interrupted);
    if (!interrupted) return out;
  }
  throw SysError(EINTR, call + " (dump kept changing)");
}

}  // namespace weft::nl
