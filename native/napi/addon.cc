#include "napi/bindings.h"

namespace weft::napi {

Napi::Error to_js_error(Napi::Env env, const SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, e.code()));
  err.Set("errno", Napi::Number::New(env, e.err()));
  err.Set("syscall", Napi::String::New(env, e.call()));
  if (!e.ext_ack().empty()) err.Set("extAck", Napi::String::New(env, e.ext_ack()));
  return err;
}

Format format_arg(const Napi::Env& env, Napi::Value v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "udp") return Format::udp;
  if (s == "vxlan") return Format::vxlan;
  throw Napi::TypeError::New(env, "format must be 'udp' or 'vxlan'");
}

}  // namespace weft::napi

// NODE_API_MODULE wants an unqualified name.
static Napi::Object InitWeft(Napi::Env env, Napi::Object exports) {
  weft::napi::register_bench(env, exports);
  weft::napi::register_engine(env, exports);
  weft::napi::register_netlink(env, exports);
  weft::napi::register_offload(env, exports);
  weft::napi::register_notify(env, exports);
  return exports;
}

NODE_API_MODULE(weft, InitWeft)
