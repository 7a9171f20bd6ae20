// The addon's pieces register themselves on the exports object; each file
// under native/napi/ only converts arguments and results for the core.
#pragma once

#include <napi.h>

#include "core/packet.h"
#include "core/sys_error.h"

namespace weft::napi {

// Turns a core SysError into a JS Error with .code (errno name), .errno,
// .syscall (what failed) and .extAck (netlink extended-ack text, if any).
Napi::Error to_js_error(Napi::Env env, const SysError& e);

// "udp" or "vxlan"; a TypeError for anything else.
Format format_arg(const Napi::Env& env, Napi::Value v);

void register_bench(Napi::Env env, Napi::Object exports);
void register_engine(Napi::Env env, Napi::Object exports);
void register_netlink(Napi::Env env, Napi::Object exports);
void register_offload(Napi::Env env, Napi::Object exports);
void register_notify(Napi::Env env, Napi::Object exports);

}  // namespace weft::napi
