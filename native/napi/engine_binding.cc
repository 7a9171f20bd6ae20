// JS surface of the engine and of the pure encap functions. Argument checks
// here are about types; TS has already validated meaning.
#include <arpa/inet.h>

#include <memory>

#include "core/engine.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

uint32_t ipv4_arg(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  in_addr a{};
  if (!v.IsString() || inet_pton(AF_INET, v.As<Napi::String>().Utf8Value().c_str(), &a) != 1) {
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be an IPv4 address string");
  }
  return ntohl(a.s_addr);
}

uint32_t uint_arg(const Napi::Object& o, const char* key, uint32_t fallback, uint32_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer 0.." + std::to_string(max));
  }
  return static_cast<uint32_t>(d);
}

Mac mac_arg(const Napi::Object& o, const char* key, bool required) {
  Napi::Value v = o.Get(key);
  Mac m{};
  if (v.IsUndefined() && !required) return m;
  if (!v.IsString() || !parse_mac(v.As<Napi::String>().Utf8Value(), &m)) {
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a MAC address like aa:bb:cc:dd:ee:ff");
  }
  return m;
}

Format format_arg(const Napi::Env& env, Napi::Value v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "udp") return Format::udp;
  if (s == "vxlan") return Format::vxlan;
  throw Napi::TypeError::New(env, "format must be 'udp' or 'vxlan'");
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an object");
  }
  return info[i].As<Napi::Object>();
}

std::vector<FibEntry> entries_arg(const Napi::Env& env, Napi::Value v, bool keys_only) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "peers must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<FibEntry> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value ev = a.Get(i);
    if (!ev.IsObject()) throw Napi::TypeError::New(env, "peers[" + std::to_string(i) + "] must be an object");
    Napi::Object o = ev.As<Napi::Object>();
    FibEntry e;
    e.prefix = ipv4_arg(o, "prefix");
    e.prefix_len = static_cast<uint8_t>(uint_arg(o, "prefixLen", 0xff, 32));
    if (e.prefix_len == 0xff) throw Napi::TypeError::New(env, "prefixLen is required");
    if (!keys_only) {
      e.peer.public_ip = ipv4_arg(o, "publicIp");
      e.peer.port = static_cast<uint16_t>(uint_arg(o, "port", 0, 65535));
      e.peer.vtep_mac = mac_arg(o, "vtepMac", false);
    }
    normalize_entry(&e);
    out.push_back(e);
  }
  return out;
}

std::string ipv4_string(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char s[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, s, sizeof s);
  return s;
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
    Napi::Object o = object_arg(info, 0, "engine options");
    EngineConfig cfg;
    cfg.format = format_arg(info.Env(), o.Get("format"));
    Napi::Value name = o.Get("tunName");
    if (!name.IsString()) throw Napi::TypeError::New(info.Env(), "tunName must be a string");
    cfg.tun_name = name.As<Napi::String>().Utf8Value();
    cfg.mtu = uint_arg(o, "mtu", 1450, 65535);
    cfg.local_ip = ipv4_arg(o, "localIp");
    cfg.port = static_cast<uint16_t>(uint_arg(o, "port", cfg.format == Format::udp ? 8285 : 8472, 65535));
    cfg.vni = uint_arg(o, "vni", 1, kVniMax);
    cfg.local_mac = mac_arg(o, "vtepMac", cfg.format == Format::vxlan);
    cfg.batch = uint_arg(o, "batch", 64, 1024);
    cfg.socket_buffer = static_cast<int>(uint_arg(o, "socketBuffer", 4 << 20, 1 << 30));
    Napi::Value offload = o.Get("offload");
    if (!offload.IsUndefined() && !offload.IsBoolean()) throw Napi::TypeError::New(info.Env(), "offload must be a boolean");
    cfg.offload = offload.IsUndefined() || offload.As<Napi::Boolean>().Value();
    Napi::Value any = o.Get("allowAnySource");
    if (!any.IsUndefined() && !any.IsBoolean()) throw Napi::TypeError::New(info.Env(), "allowAnySource must be a boolean");
    cfg.allow_any_source = any.IsBoolean() && any.As<Napi::Boolean>().Value();
    Napi::Value strict = o.Get("strictSource");
    if (!strict.IsUndefined() && !strict.IsBoolean()) throw Napi::TypeError::New(info.Env(), "strictSource must be a boolean");
    cfg.inner.strict_source = strict.IsBoolean() && strict.As<Napi::Boolean>().Value();
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

  // start({prefix, prefixLen}): our lease, the only inner destinations accepted.
  Napi::Value start(const Napi::CallbackInfo& info) {
    Napi::Object so = object_arg(info, 0, "subnet");
    uint32_t prefix = ipv4_arg(so, "prefix");
    uint32_t len = uint_arg(so, "prefixLen", 0xff, 32);
    if (len == 0xff) throw Napi::TypeError::New(info.Env(), "subnet.prefixLen is required");
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
    engine(info.Env()).fib().replace(entries_arg(info.Env(), info[0], false));
    return info.Env().Undefined();
  }
  Napi::Value update_peers(const Napi::CallbackInfo& info) {
    engine(info.Env()).fib().update(entries_arg(info.Env(), info[0], false), entries_arg(info.Env(), info[1], true));
    return info.Env().Undefined();
  }
  Napi::Value peers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<FibEntry> entries = engine(env).fib().entries();
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      const FibEntry& e = entries[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("prefix", ipv4_string(e.prefix));
      o.Set("prefixLen", e.prefix_len);
      o.Set("publicIp", ipv4_string(e.peer.public_ip));
      o.Set("port", e.peer.port);
      o.Set("vtepMac", format_mac(e.peer.vtep_mac));
      out.Set(static_cast<uint32_t>(i), o);
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
  Napi::Object o = object_arg(info, 2, "decap options");
  p.vni = uint_arg(o, "vni", 1, kVniMax);
  p.local_mac = mac_arg(o, "vtepMac", p.format == Format::vxlan);
  p.max_inner = uint_arg(o, "maxInner", 1500, 65535);
  return p;
}

Napi::Value bytes_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "packet must be a Uint8Array");
  }
  return info[i];
}

// decap(format, payload, {vni, vtepMac, maxInner}) -> {verdict, innerOffset, innerLength, superPacket}
Napi::Value js_decap(const Napi::CallbackInfo& info) {
  Napi::Uint8Array bytes = bytes_arg(info, 1).As<Napi::Uint8Array>();
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
  Napi::Uint8Array inner = bytes_arg(info, 1).As<Napi::Uint8Array>();
  Napi::Object o = object_arg(info, 2, "encap options");
  EncapParams p{f, uint_arg(o, "vni", 1, kVniMax), mac_arg(o, "vtepMac", f == Format::vxlan)};
  Mac peer{};
  if (f == Format::vxlan) {
    Napi::Object holder = Napi::Object::New(env);
    holder.Set("peerMac", info.Length() > 3 ? info[3] : env.Undefined());
    peer = mac_arg(holder, "peerMac", true);
  }
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

// A microbenchmark of the packet core, run natively so the JS call costs
// nothing per packet: encap or decap of `batch` packets of `size` bytes,
// laid out as the engine lays them out (headroom, one buffer per packet).
// "rx" is decap plus the inner-address check the engine runs after it,
// against a FIB of 256 peers; "rx-strict" the same with the source check
// (a FIB lookup per packet): their difference is what strictSource costs.
// run(iterations) processes iterations * batch packets; returns how many
// passed (so the work cannot be optimised away).
class BenchWrap : public Napi::ObjectWrap<BenchWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CoreBench", {InstanceMethod<&BenchWrap::run>("run")});
  }

  explicit BenchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BenchWrap>(info) {
    Napi::Env env = info.Env();
    std::string op = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (op != "encap" && op != "decap" && op != "rx" && op != "rx-strict") {
      throw Napi::TypeError::New(env, "op must be 'encap', 'decap', 'rx' or 'rx-strict'");
    }
    encap_ = op == "encap";
    inner_check_ = op == "rx" || op == "rx-strict";
    rule_.subnet = 0x0af40200;  // 10.244.2.0/24: the packets' destination is ours
    rule_.prefix_len = 24;
    rule_.strict_source = op == "rx-strict";
    std::vector<FibEntry> peers;
    for (uint32_t i = 0; i < 256; i++) {
      FibEntry e;
      e.prefix = 0x0af40000 | (i << 8);  // 10.244.i.0/24
      e.prefix_len = 24;
      e.peer.public_ip = 0xc0a80000 | i;  // 192.168.0.i
      normalize_entry(&e);
      peers.push_back(e);
    }
    fib_ = std::make_unique<Fib>(std::move(peers));
    format_ = format_arg(env, info[1]);
    if (!info[2].IsNumber() || !info[3].IsNumber()) throw Napi::TypeError::New(env, "size and batch must be numbers");
    size_ = info[2].As<Napi::Number>().Uint32Value();
    batch_ = info[3].As<Napi::Number>().Uint32Value();
    if (size_ < kIpv4MinHeader || size_ > 9000 || batch_ < 1 || batch_ > 1024) {
      throw Napi::RangeError::New(env, "size must be 20..9000 and batch 1..1024");
    }
    stride_ = kHeadroom + size_;
    bufs_.assign(stride_ * batch_, 0);
    parse_mac("02:00:00:00:00:01", &local_);
    parse_mac("02:00:00:00:00:02", &peer_);
    for (uint32_t i = 0; i < batch_; i++) {
      uint8_t* p = bufs_.data() + i * stride_ + kHeadroom;
      p[0] = 0x45;
      store_be16(p + 2, static_cast<uint16_t>(size_));
      p[8] = 255;
      p[9] = 17;
      const uint8_t src[4] = {10, 244, 1, 2}, dst[4] = {10, 244, 2, 2};
      std::memcpy(p + 12, src, 4);
      std::memcpy(p + 16, dst, 4);
      store_be16(p + 10, inet_checksum(p, 20));
      if (!encap_) {
        // Decap input: the datagram a peer sends us.
        size_t off = 0, len = 0;
        encap(EncapParams{format_, 1, peer_}, local_, bufs_.data() + i * stride_, kHeadroom, size_, &off, &len);
      }
    }
  }

 private:
  static constexpr size_t kHeadroom = 64;
  static constexpr uint32_t kSender = 0xc0a80001;  // 192.168.0.1, the peer holding 10.244.1.0/24

  Napi::Value run(const Napi::CallbackInfo& info) {
    uint32_t iterations = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1;
    const EncapParams ep{format_, 1, local_};
    const DecapParams dp{format_, 1, local_, 65535};
    const size_t decap_off = kHeadroom - encap_len(format_);
    const size_t decap_len = size_ + encap_len(format_);
    uint64_t ok = 0;
    for (uint32_t it = 0; it < iterations; it++) {
      for (uint32_t i = 0; i < batch_; i++) {
        uint8_t* b = bufs_.data() + i * stride_;
        if (encap_) {
          if (format_ == Format::udp && b[kHeadroom + 8] <= 1) {
            // udp encap decrements the TTL: start again from 255 (1 pass in 254).
            b[kHeadroom + 8] = 255;
            store_be16(b + kHeadroom + 10, 0);
            store_be16(b + kHeadroom + 10, inet_checksum(b + kHeadroom, 20));
          }
          size_t off = 0, len = 0;
          ok += check_tx_ipv4(b + kHeadroom, size_) == Counter::tx_packets &&
                encap(ep, peer_, b, kHeadroom, size_, &off, &len) == Counter::tx_packets;
        } else {
          DecapResult r = decap(dp, b + decap_off, decap_len);
          if (r.verdict == Counter::rx_packets && inner_check_) {
            r.verdict = check_inner(rule_, b + decap_off + r.inner_off, kSender, *fib_);
          }
          ok += r.verdict == Counter::rx_packets;
        }
      }
    }
    return Napi::Number::New(info.Env(), static_cast<double>(ok));
  }

  bool encap_ = true;
  bool inner_check_ = false;
  InnerRule rule_;
  std::unique_ptr<Fib> fib_;
  Format format_ = Format::vxlan;
  uint32_t size_ = 64, batch_ = 64;
  size_t stride_ = 0;
  std::vector<uint8_t> bufs_;
  Mac local_{}, peer_{};
};

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("CoreBench", BenchWrap::define(env));
  exports.Set("Engine", EngineWrap::define(env));
  Napi::Object encap_fns = Napi::Object::New(env);
  encap_fns.Set("decap", Napi::Function::New(env, js_decap, "decap"));
  encap_fns.Set("encap", Napi::Function::New(env, js_encap, "encap"));
  Napi::Array names = Napi::Array::New(env, kCounterCount);
  for (size_t i = 0; i < kCounterCount; i++) names.Set(static_cast<uint32_t>(i), counter_name(static_cast<Counter>(i)));
  encap_fns.Set("counterNames", names);
  encap_fns.Set("overhead", Napi::Object::New(env));
  encap_fns.Get("overhead").As<Napi::Object>().Set("udp", static_cast<double>(overhead(Format::udp)));
  encap_fns.Get("overhead").As<Napi::Object>().Set("vxlan", static_cast<double>(overhead(Format::vxlan)));
  exports.Set("encap", encap_fns);
}

}  // namespace weft::napi
