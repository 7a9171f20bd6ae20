// JS surface of the engine and of the pure encap functions. Argument checks
// here are about types; TS has already validated meaning. Defaults are the
// core's (EngineConfig), not restated here.
//
// The peer table crosses as a Uint32Array, kFibWords words per entry:
//   prefix (host order), prefix length, public IP (host order),
//   VtepMAC bytes 0-1 (big-endian), VtepMAC bytes 2-5 (big-endian)
// so a 5,000-peer push is one copy of 100 KB, not 5,000 objects with
// strings to parse (src/engine.ts builds it; peers() returns the same).
#include <cstring>
#include <memory>

#include "core/engine.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

// A property of an options object, through args.h's converters: numbers
// and booleans fall back to the core's default when left out, a VtepMAC is
// required where the format needs one.
uint32_t uint_prop(const Napi::Object& o, const char* key, uint32_t fallback, uint32_t max) {
  return uint_value_or(o.Get(key), key, fallback, 0, max);
}

bool bool_prop(const Napi::Object& o, const char* key, bool fallback) {
  return bool_value_or(o.Get(key), key, fallback);
}

Mac mac_prop(const Napi::Object& o, const char* key, bool required) {
  Napi::Value v = o.Get(key);
  return !required && absent(v) ? Mac{} : mac_value(v, key);
}

constexpr uint32_t kFibWords = 5;

Napi::Uint32Array words_arg(const Napi::Env& env, Napi::Value v, const char* what, uint32_t per_entry) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Uint32Array");
  }
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  if (a.ElementLength() % per_entry != 0) {
    throw Napi::RangeError::New(env, std::string(what) + " must hold " + std::to_string(per_entry) + " words per entry");
  }
  return a;
}

uint8_t prefix_len_at(const Napi::Env& env, const uint32_t* w, size_t i, const char* what) {
  if (w[1] > 32) {
    throw Napi::RangeError::New(env, std::string(what) + " entry " + std::to_string(i) + ": prefix length " + std::to_string(w[1]) + " is not 0..32");
  }
  return static_cast<uint8_t>(w[1]);
}

// Entries from the packed words; every peer gets the engine's port.
std::vector<FibEntry> entries_arg(const Napi::Env& env, Napi::Value v, uint16_t port) {
  Napi::Uint32Array a = words_arg(env, v, "peers", kFibWords);
  const uint32_t* w = a.Data();
  const size_t n = a.ElementLength() / kFibWords;
  std::vector<FibEntry> out(n);
  for (size_t i = 0; i < n; i++, w += kFibWords) {
    FibEntry& e = out[i];
    e.prefix = w[0];
    e.prefix_len = prefix_len_at(env, w, i, "peers");
    e.peer.public_ip = w[2];
    e.peer.port = port;
    if (w[3] > 0xffff) throw Napi::RangeError::New(env, "peers entry " + std::to_string(i) + ": VtepMAC high word past 16 bits");
    const uint8_t mac[6] = {uint8_t(w[3] >> 8), uint8_t(w[3]), uint8_t(w[4] >> 24), uint8_t(w[4] >> 16), uint8_t(w[4] >> 8), uint8_t(w[4])};
    std::memcpy(e.peer.vtep_mac.data(), mac, 6);
  }
  return out;
}

// Removals: two words each, prefix and length.
std::vector<FibEntry> keys_arg(const Napi::Env& env, Napi::Value v) {
  Napi::Uint32Array a = words_arg(env, v, "removals", 2);
  const uint32_t* w = a.Data();
  const size_t n = a.ElementLength() / 2;
  std::vector<FibEntry> out(n);
  for (size_t i = 0; i < n; i++, w += 2) {
    out[i].prefix = w[0];
    out[i].prefix_len = prefix_len_at(env, w, i, "removals");
  }
  return out;
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod<&EngineWrap::start>("start"), InstanceMethod<&EngineWrap::stop>("stop"),
                        InstanceMethod<&EngineWrap::set_peers>("setPeers"),
                        InstanceMethod<&EngineWrap::update_peers>("updatePeers"),
                        InstanceMethod<&EngineWrap::peers>("peers"), InstanceMethod<&EngineWrap::stats>("stats"),
                        InstanceMethod<&EngineWrap::close>("close"),
                        InstanceAccessor<&EngineWrap::tun_name>("tunName")});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Object o = object_value(arg(info, 0), "engine options");
    EngineConfig cfg;
    cfg.format = format_arg(info.Env(), o.Get("format"));
    cfg.tun_name = string_value(o.Get("tunName"), "tunName");
    cfg.mtu = uint_prop(o, "mtu", cfg.mtu, 65535);
    cfg.local_ip = uint_value(o.Get("localIp"), "localIp", 0, UINT32_MAX);
    // No default here: the ports are the control layer's (src/defaults.ts).
    uint32_t port = uint_prop(o, "port", 0, 65535);
    if (port == 0) throw Napi::TypeError::New(info.Env(), "port is required (1..65535)");
    cfg.port = static_cast<uint16_t>(port);
    cfg.vni = uint_prop(o, "vni", cfg.vni, kVniMax);
    cfg.local_mac = mac_prop(o, "vtepMac", cfg.format == Format::vxlan);
    cfg.batch = uint_prop(o, "batch", cfg.batch, 1024);
    cfg.socket_buffer = static_cast<int>(uint_prop(o, "socketBuffer", static_cast<uint32_t>(cfg.socket_buffer), 1 << 30));
    cfg.offload = bool_prop(o, "offload", cfg.offload);
    cfg.allow_any_source = bool_prop(o, "allowAnySource", cfg.allow_any_source);
    cfg.inner.strict_source = bool_prop(o, "strictSource", cfg.inner.strict_source);
    cfg.batch_bytes = uint_prop(o, "batchBytes", static_cast<uint32_t>(cfg.batch_bytes), 64u << 20);
    cfg.zero_copy = bool_prop(o, "zeroCopy", cfg.zero_copy);
    cfg.send_runs = bool_prop(o, "sendRuns", cfg.send_runs);
    cfg.threads = uint_prop(o, "threads", cfg.threads, 2);
    cfg.busy_poll_us = uint_prop(o, "busyPollUs", cfg.busy_poll_us, 10000);
    cfg.tun_queue = uint_prop(o, "tunQueue", cfg.tun_queue, 100000);
    try {
      engine_ = std::make_unique<Engine>(cfg);
    } catch (const SysError& e) {
      throw to_js_error(info.Env(), e);
    }
  }

 private:
  Engine& engine(const Napi::Env& env) {
    if (!engine_) throw Napi::Error::New(env, "engine is closed");
    return *engine_;
  }

  // start({prefix, prefixLen}): our lease (host order), the only inner destinations accepted.
  Napi::Value start(const Napi::CallbackInfo& info) {
    Napi::Object so = object_value(arg(info, 0), "subnet");
    uint32_t prefix = uint_value(so.Get("prefix"), "subnet.prefix", 0, UINT32_MAX);
    uint32_t len = uint_value(so.Get("prefixLen"), "subnet.prefixLen", 0, 32);
    try {
      engine(info.Env()).start(prefix, static_cast<uint8_t>(len));
    } catch (const SysError& e) {
      throw to_js_error(info.Env(), e);
    }
    return info.Env().Undefined();
  }
  Napi::Value stop(const Napi::CallbackInfo& info) {
    if (engine_) engine_->stop();
    return info.Env().Undefined();
  }
  // Stops the threads and closes the TUN (the kernel removes the link and
  // its routes) and the socket.
  Napi::Value close(const Napi::CallbackInfo& info) {
    engine_.reset();
    return info.Env().Undefined();
  }
  Napi::Value set_peers(const Napi::CallbackInfo& info) {
    Engine& e = engine(info.Env());
    e.fib().replace(entries_arg(info.Env(), info[0], e.config().port));
    return info.Env().Undefined();
  }
  Napi::Value update_peers(const Napi::CallbackInfo& info) {
    Engine& e = engine(info.Env());
    e.fib().update(entries_arg(info.Env(), info[0], e.config().port), keys_arg(info.Env(), info[1]));
    return info.Env().Undefined();
  }
  // peers() -> Uint32Array, the layout setPeers takes.
  Napi::Value peers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<FibEntry> entries = engine(env).fib().entries();
    Napi::Uint32Array out = Napi::Uint32Array::New(env, entries.size() * kFibWords);
    uint32_t* w = out.Data();
    for (const FibEntry& e : entries) {
      const Mac& m = e.peer.vtep_mac;
      w[0] = e.prefix;
      w[1] = e.prefix_len;
      w[2] = e.peer.public_ip;
      w[3] = uint32_t{m[0]} << 8 | m[1];
      w[4] = uint32_t{m[2]} << 24 | uint32_t{m[3]} << 16 | uint32_t{m[4]} << 8 | m[5];
      w += kFibWords;
    }
    return out;
  }
  Napi::Value stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    Napi::Object out = Napi::Object::New(env);
    Napi::Object counters = Napi::Object::New(env);
    for (size_t i = 0; i < kCounterCount; i++) {
      Counter c = static_cast<Counter>(i);
      Napi::Object pb = Napi::Object::New(env);
      pb.Set("packets", static_cast<double>(e.counters().packets(c)));
      pb.Set("bytes", static_cast<double>(e.counters().bytes(c)));
      counters.Set(counter_name(c), pb);
    }
    out.Set("counters", counters);
    out.Set("running", e.running());
    std::string fatal = e.fatal_error();
    out.Set("fatalError", fatal.empty() ? env.Null() : Napi::String::New(env, fatal));
    return out;
  }
  Napi::Value tun_name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), engine(info.Env()).tun_name()); }

  std::unique_ptr<Engine> engine_;
};

DecapParams decap_params(const Napi::CallbackInfo& info) {
  DecapParams p;
  p.format = format_arg(info.Env(), info[0]);
  Napi::Object o = object_value(arg(info, 2), "decap options");
  p.vni = uint_prop(o, "vni", 1, kVniMax);
  p.local_mac = mac_prop(o, "vtepMac", p.format == Format::vxlan);
  p.max_inner = uint_prop(o, "maxInner", 1500, 65535);
  return p;
}

// decap(format, payload, {vni, vtepMac, maxInner}) -> {verdict, innerOffset, innerLength, superPacket}
Napi::Value js_decap(const Napi::CallbackInfo& info) {
  Napi::Uint8Array bytes = bytes_value(arg(info, 1), "packet");
  DecapParams p = decap_params(info);
  DecapResult r = decap(p, bytes.Data(), bytes.ByteLength());
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("verdict", counter_name(r.verdict));
  out.Set("innerOffset", static_cast<double>(r.inner_off));
  out.Set("innerLength", static_cast<double>(r.inner_len));
  out.Set("superPacket", r.super_packet);
  return out;
}

// encap(format, innerPacket, {vni, vtepMac}, peerMac) -> {verdict, payload?}
Napi::Value js_encap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Format f = format_arg(env, info[0]);
  Napi::Uint8Array inner = bytes_value(arg(info, 1), "packet");
  Napi::Object o = object_value(arg(info, 2), "encap options");
  EncapParams p{f, uint_prop(o, "vni", 1, kVniMax), mac_prop(o, "vtepMac", f == Format::vxlan)};
  Mac peer{};
  if (f == Format::vxlan) peer = mac_value(arg(info, 3), "peerMac");
  size_t len = inner.ByteLength();
  std::vector<uint8_t> buf(kVxlanEncap + len);
  if (len) std::memcpy(buf.data() + kVxlanEncap, inner.Data(), len);
  Counter v = check_tx_ipv4(buf.data() + kVxlanEncap, len);
  size_t off = 0, out_len = 0;
  if (v == Counter::tx_packets) v = encap(p, peer, buf.data(), kVxlanEncap, len, &off, &out_len);
  Napi::Object out = Napi::Object::New(env);
  out.Set("verdict", counter_name(v));
  if (v == Counter::tx_packets) out.Set("payload", Napi::Buffer<uint8_t>::Copy(env, buf.data() + off, out_len));
  return out;
}

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::define(env));
  Napi::Object encap_fns = Napi::Object::New(env);
  encap_fns.Set("decap", Napi::Function::New(env, js_decap, "decap"));
  encap_fns.Set("encap", Napi::Function::New(env, js_encap, "encap"));
  Napi::Array names = Napi::Array::New(env, kCounterCount);
  for (size_t i = 0; i < kCounterCount; i++) names.Set(static_cast<uint32_t>(i), counter_name(static_cast<Counter>(i)));
  encap_fns.Set("counterNames", names);
  encap_fns.Set("fibWords", kFibWords);
  encap_fns.Set("overhead", Napi::Object::New(env));
  encap_fns.Get("overhead").As<Napi::Object>().Set("udp", static_cast<double>(overhead(Format::udp)));
  encap_fns.Get("overhead").As<Napi::Object>().Set("vxlan", static_cast<double>(overhead(Format::vxlan)));
  exports.Set("encap", encap_fns);
}

}  // namespace weft::napi
