// JS surface of the rtnetlink verbs (exports.netlink). Only conversion lives
// here: types are checked (TypeError for a wrong type, RangeError for a number
// out of range, each naming the argument), meaning is the kernel's to judge.
//
// Each verb opens its own netlink socket: it costs three syscalls, keeps no
// state between calls (a Worker or a thrown dump can't leave a stale sequence
// behind), and a process that changes network namespace gets the new one.
#include <string>

#include "core/rtnl.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

namespace nl = weft::nl;

// ---- arguments

int ifindex_value(const Napi::Value& v, const std::string& name) {
  return static_cast<int>(uint_value(v, name, 1, INT32_MAX));
}

nl::Op op_value(const Napi::Value& v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "add") return nl::Op::add;
  if (s == "replace") return nl::Op::replace;
  if (s == "del") return nl::Op::del;
  throw Napi::TypeError::New(v.Env(), "op must be 'add', 'replace' or 'del'");
}

// { dst, dstLen, gateway?, oif?, table?, scope?, protocol?, onlink?, prefsrc?, priority? }
nl::Route route_value(const Napi::Value& v) {
  Napi::Object o = object_value(v, "route");
  nl::Route r;
  r.dst = ip4_value(o.Get("dst"), "route.dst");
  r.dst_len = static_cast<uint8_t>(uint_value(o.Get("dstLen"), "route.dstLen", 0, 32));
  Napi::Value x = o.Get("gateway");
  if (!absent(x)) r.gateway = ip4_value(x, "route.gateway");
  x = o.Get("oif");
  if (!absent(x)) r.oif = ifindex_value(x, "route.oif");
  x = o.Get("table");
  if (!absent(x)) r.table = uint_value(x, "route.table", 1, UINT32_MAX);
  x = o.Get("scope");
  if (!absent(x)) r.scope = static_cast<uint8_t>(uint_value(x, "route.scope", 0, 255));
  x = o.Get("protocol");
  if (!absent(x)) r.protocol = static_cast<uint8_t>(uint_value(x, "route.protocol", 0, 255));
  x = o.Get("onlink");
  if (!absent(x)) r.onlink = bool_value(x, "route.onlink");
  x = o.Get("prefsrc");
  if (!absent(x)) r.prefsrc = ip4_value(x, "route.prefsrc");
  x = o.Get("priority");
  if (!absent(x)) r.priority = uint_value(x, "route.priority", 0, UINT32_MAX);
  return r;
}

// (ifindex, address, prefixLen, options?: { scope?, label? })
nl::Addr addr_args(const Napi::CallbackInfo& info, size_t first) {
  nl::Addr a;
  a.ifindex = ifindex_value(arg(info, first), "ifindex");
  a.address = ip4_value(arg(info, first + 1), "address");
  a.prefix_len = static_cast<uint8_t>(uint_value(arg(info, first + 2), "prefixLen", 0, 32));
  Napi::Value opts = arg(info, first + 3);
  if (!absent(opts)) {
    Napi::Object o = object_value(opts, "options");
    Napi::Value x = o.Get("scope");
    if (!absent(x)) a.scope = static_cast<uint8_t>(uint_value(x, "options.scope", 0, 255));
    x = o.Get("label");
    if (!absent(x)) a.label = string_value(x, "options.label");
  }
  return a;
}

// ---- results

Napi::String ip4_js(Napi::Env env, const Ip4& a) {
  return Napi::String::New(env, format_ip4(a));
}

Napi::Object link_js(Napi::Env env, const nl::Link& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", l.index);
  o.Set("name", l.name);
  o.Set("mtu", l.mtu);
  o.Set("flags", l.flags);
  o.Set("up", l.up());
  o.Set("mac", l.mac ? Napi::Value(Napi::String::New(env, format_mac(*l.mac))) : env.Null());
  if (!l.kind.empty()) o.Set("kind", l.kind);
  return o;
}

Napi::Object addr_js(Napi::Env env, const nl::Addr& a) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", a.ifindex);
  o.Set("address", ip4_js(env, a.address));
  o.Set("prefixLen", a.prefix_len);
  o.Set("scope", a.scope);
  if (!a.label.empty()) o.Set("label", a.label);
  o.Set("flags", a.flags);
  return o;
}

Napi::Object route_js(Napi::Env env, const nl::Route& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dst", ip4_js(env, r.dst));
  o.Set("dstLen", r.dst_len);
  if (r.gateway) o.Set("gateway", ip4_js(env, *r.gateway));
  if (r.oif) o.Set("oif", r.oif);
  o.Set("table", r.table);
  if (r.scope) o.Set("scope", *r.scope);
  if (r.protocol) o.Set("protocol", *r.protocol);
  o.Set("onlink", r.onlink);
  if (r.prefsrc) o.Set("prefsrc", ip4_js(env, *r.prefsrc));
  if (r.priority) o.Set("priority", *r.priority);
  return o;
}

template <class T, class F>
Napi::Array array_js(Napi::Env env, const std::vector<T>& v, F f) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), f(env, v[i]));
  return a;
}

// ---- calling the core

// Runs `f` with a fresh socket; core errors become JS errors with .code.
template <class F>
auto with_socket(Napi::Env env, F f) {
  try {
    nl::Socket s;
    return f(s);
  } catch (const SysError& e) {
    throw to_js_error(env, e);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("netlink: ") + e.what());
  }
}

Napi::Value LinkGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = arg(info, 0);
  nl::Link l;
  if (v.IsString()) {
    std::string name = v.As<Napi::String>().Utf8Value();
    l = with_socket(env, [&](nl::Socket& s) { return nl::link_get(s, name); });
  } else if (v.IsNumber()) {
    int index = ifindex_value(v, "nameOrIndex");
    l = with_socket(env, [&](nl::Socket& s) { return nl::link_get(s, index); });
  } else {
    throw Napi::TypeError::New(env, "nameOrIndex must be a string or a number");
  }
  return link_js(env, l);
}

Napi::Value LinkList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto links = with_socket(env, [](nl::Socket& s) { return nl::link_list(s); });
  return array_js(env, links, link_js);
}

Napi::Value LinkSetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ifindex_value(arg(info, 0), "ifindex");
  bool up = bool_value(arg(info, 1), "up");
  with_socket(env, [&](nl::Socket& s) { nl::link_set_up(s, ifindex, up); });
  return env.Undefined();
}

Napi::Value LinkSetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ifindex_value(arg(info, 0), "ifindex");
  uint32_t mtu = uint_value(arg(info, 1), "mtu", 0, UINT32_MAX);
  with_socket(env, [&](nl::Socket& s) { nl::link_set_mtu(s, ifindex, mtu); });
  return env.Undefined();
}

template <void (*Verb)(nl::Socket&, const nl::Addr&)>
Napi::Value AddrModify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  nl::Addr a = addr_args(info, 0);
  with_socket(env, [&](nl::Socket& s) { Verb(s, a); });
  return env.Undefined();
}

Napi::Value AddrList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = arg(info, 0);
  int ifindex = absent(v) ? 0 : ifindex_value(v, "ifindex");
  auto addrs = with_socket(env, [&](nl::Socket& s) { return nl::addr_list(s, ifindex); });
  return array_js(env, addrs, addr_js);
}

template <void (*Verb)(nl::Socket&, const nl::Route&)>
Napi::Value RouteModify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  nl::Route r = route_value(arg(info, 0));
  with_socket(env, [&](nl::Socket& s) { Verb(s, r); });
  return env.Undefined();
}

Napi::Value RouteList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto routes = with_socket(env, [](nl::Socket& s) { return nl::route_list(s); });
  return array_js(env, routes, route_js);
}

Napi::Value RouteGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Ip4 dst = ip4_value(arg(info, 0), "address");
  nl::Route r = with_socket(env, [&](nl::Socket& s) { return nl::route_get(s, dst); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("dst", ip4_js(env, r.dst_len == 32 ? r.dst : dst));
  if (r.gateway) o.Set("gateway", ip4_js(env, *r.gateway));
  o.Set("oif", r.oif);
  if (r.prefsrc) o.Set("prefsrc", ip4_js(env, *r.prefsrc));
  return o;
}

Napi::Value DefaultRouteLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int oif = with_socket(env, [](nl::Socket& s) { return nl::default_route_link(s); });
  return Napi::Number::New(env, oif);
}

// ---- pure helpers (no socket): the request bytes, and the parsers

template <class Build>
Napi::Value encoded(Napi::Env env, Build build) {
  uint8_t buf[nl::kRequestCap];
  nl::MsgBuilder b(buf, sizeof buf);
  if (!build(b)) throw Napi::Error::New(env, "netlink: message does not fit in " + std::to_string(sizeof buf) + " bytes");
  return Napi::Buffer<uint8_t>::Copy(env, b.data(), b.size());
}

Napi::Value EncodeRoute(const Napi::CallbackInfo& info) {
  nl::Op op = op_value(arg(info, 0));
  nl::Route r = route_value(arg(info, 1));
  return encoded(info.Env(), [&](nl::MsgBuilder& b) { return nl::build_route(b, op, r); });
}

Napi::Value DecodeRoute(const Napi::CallbackInfo& info) {
  Napi::Uint8Array buf = bytes_value(arg(info, 0), "buf");
  std::optional<nl::Route> r = nl::parse_route(buf.Data(), buf.ByteLength());
  return r ? Napi::Value(route_js(info.Env(), *r)) : info.Env().Null();
}

Napi::Value EncodeAddr(const Napi::CallbackInfo& info) {
  nl::Op op = op_value(arg(info, 0));
  nl::Addr a = addr_args(info, 1);
  return encoded(info.Env(), [&](nl::MsgBuilder& b) { return nl::build_addr(b, op, a); });
}

Napi::Value DecodeAddr(const Napi::CallbackInfo& info) {
  Napi::Uint8Array buf = bytes_value(arg(info, 0), "buf");
  std::optional<nl::Addr> a = nl::parse_addr(buf.Data(), buf.ByteLength());
  return a ? Napi::Value(addr_js(info.Env(), *a)) : info.Env().Null();
}

Napi::Value DecodeLink(const Napi::CallbackInfo& info) {
  Napi::Uint8Array buf = bytes_value(arg(info, 0), "buf");
  std::optional<nl::Link> l = nl::parse_link(buf.Data(), buf.ByteLength());
  return l ? Napi::Value(link_js(info.Env(), *l)) : info.Env().Null();
}

}  // namespace

void register_netlink(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("linkGet", Napi::Function::New(env, LinkGet, "linkGet"));
  o.Set("linkList", Napi::Function::New(env, LinkList, "linkList"));
  o.Set("linkSetUp", Napi::Function::New(env, LinkSetUp, "linkSetUp"));
  o.Set("linkSetMtu", Napi::Function::New(env, LinkSetMtu, "linkSetMtu"));
  o.Set("addrAdd", Napi::Function::New(env, AddrModify<nl::addr_add>, "addrAdd"));
  o.Set("addrReplace", Napi::Function::New(env, AddrModify<nl::addr_replace>, "addrReplace"));
  o.Set("addrDel", Napi::Function::New(env, AddrModify<nl::addr_del>, "addrDel"));
  o.Set("addrList", Napi::Function::New(env, AddrList, "addrList"));
  o.Set("routeAdd", Napi::Function::New(env, RouteModify<nl::route_add>, "routeAdd"));
  o.Set("routeReplace", Napi::Function::New(env, RouteModify<nl::route_replace>, "routeReplace"));
  o.Set("routeDel", Napi::Function::New(env, RouteModify<nl::route_del>, "routeDel"));
  o.Set("routeList", Napi::Function::New(env, RouteList, "routeList"));
  o.Set("routeGet", Napi::Function::New(env, RouteGet, "routeGet"));
  o.Set("defaultRouteLink", Napi::Function::New(env, DefaultRouteLink, "defaultRouteLink"));
  o.Set("encodeRoute", Napi::Function::New(env, EncodeRoute, "encodeRoute"));
  o.Set("decodeRoute", Napi::Function::New(env, DecodeRoute, "decodeRoute"));
  o.Set("encodeAddr", Napi::Function::New(env, EncodeAddr, "encodeAddr"));
  o.Set("decodeAddr", Napi::Function::New(env, DecodeAddr, "decodeAddr"));
  o.Set("decodeLink", Napi::Function::New(env, DecodeLink, "decodeLink"));
  exports.Set("netlink", o);
}

}  // namespace weft::napi
