// The request/ack exchange over one NETLINK_ROUTE socket: sequence numbers,
// multipart dumps, NLMSG_ERROR with the kernel's extended-ack text. It sends
// what nl_msg.h builds and hands back the raw replies for nl_msg.h to parse;
// it knows nothing of links or routes (rtnl.h does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/fd.h"
#include "core/nl_msg.h"

namespace weft::nl {

// One NETLINK_ROUTE socket (close-on-exec, extended and capped acks on).
// Use it from one thread at a time. Not copyable.
class Socket {
 public:
  Socket();  // throws SysError

  // Sends `req` (seq and pid are filled in here; NLM_F_ACK is added unless it
  // is a dump) and returns a copy of every reply message: up to NLMSG_DONE
  // for a dump, up to the ack otherwise (a get's answer comes before it). A
  // negative ack or a failed syscall throws SysError(errno, call, ext-ack),
  // whose call is `call` itself or `call` with a note in parentheses after it
  // ("(sendto)", "(no reply)"). A dump the kernel marks interrupted
  // (NLM_F_DUMP_INTR) is run again.
  std::vector<std::vector<uint8_t>> request(MsgBuilder& req, const std::string& call);

 private:
  std::vector<std::vector<uint8_t>> request_once(MsgBuilder& req, const std::string& call,
                                                 bool* interrupted);
  size_t recv_datagram(const std::string& call);

  Fd fd_;
  uint32_t port_ = 0;
  uint32_t seq_;
  std::vector<uint8_t> rx_;
};

}  // namespace weft::nl
