// Errors from the setup path (TUN, sockets, rtnetlink). They are thrown on the
// caller's thread only: packet threads never throw, they count.
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

class SysError : public std::runtime_error {
 public:
  // `call` names what failed ("bind 192.168.0.1:8472", "RTM_NEWROUTE");
  // `ext_ack` is the kernel's extended-ack text for netlink, else empty.
  SysError(int err, std::string call, std::string ext_ack = "");

  int err() const { return err_; }
  const std::string& call() const { return call_; }
  const std::string& ext_ack() const { return ext_ack_; }
  // "ENODEV", "EEXIST", ... ("E<n>" for a number glibc has no name for).
  std::string code() const;

 private:
  int err_;
  std::string call_;
  std::string ext_ack_;
};

}  // namespace weft
