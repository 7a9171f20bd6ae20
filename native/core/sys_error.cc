#include "core/sys_error.h"

#include <cstring>

namespace weft {

static std::string describe(int err, const std::string& call, const std::string& ext_ack) {
  std::string s = call + ": " + std::strerror(err);
  if (!ext_ack.empty()) s += " (" + ext_ack + ")";
  return s;
}

SysError::SysError(int err, std::string call, std::string ext_ack)
    : std::runtime_error(describe(err, call, ext_ack)),
      err_(err),
      call_(std::move(call)),
      ext_ack_(std::move(ext_ack)) {}

std::string SysError::code() const {
  const char* name = strerrorname_np(err_);
  return name ? name : "E" + std::to_string(err_);
}

}  // namespace weft
