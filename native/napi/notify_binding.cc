// sdNotify(socketPath, message): the readiness datagram (core/sd_notify.h).
#include "core/sd_notify.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

Napi::Value js_sd_notify(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(info.Env(), "sdNotify(socketPath, message) takes two strings");
  }
  try {
    sd_notify_send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  } catch (const SysError& e) {
    throw to_js_error(info.Env(), e);
  }
  return info.Env().Undefined();
}

}  // namespace

void register_notify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, js_sd_notify, "sdNotify"));
}

}  // namespace weft::napi
