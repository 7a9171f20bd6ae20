#include "core/rtnl.h"

#include <net/if.h>

#include <cerrno>
#include <cstring>

#include "core/sys_error.h"

namespace weft::nl {

namespace {

using Replies = std::vector<std::vector<uint8_t>>;

// Every message of `type` among the replies, parsed; EPROTO if one does not parse.
template <class T, class Parse>
std::vector<T> all_replies(const Replies& replies, uint16_t type, Parse parse, const std::string& call) {
  std::vector<T> out;
  out.reserve(replies.size());
  for (const auto& m : replies) {
    nlmsghdr h;
    if (m.size() < sizeof h) continue;
    std::memcpy(&h, m.data(), sizeof h);
    if (h.nlmsg_type != type) continue;
    std::optional<T> v = parse(m.data(), m.size());
    if (!v) throw SysError(EPROTO, call + " (malformed reply)");
    out.push_back(std::move(*v));
  }
  return out;
}

// The first message of `type` among the replies, parsed, or EPROTO.
template <class T, class Parse>
T first_reply(const Replies& replies, uint16_t type, Parse parse, const std::string& call) {
  std::vector<T> all = all_replies<T>(replies, type, parse, call);
  if (all.empty()) throw SysError(EPROTO, call + " (no reply)");
  return std::move(all.front());
}

template <class Build>
Replies transact(Socket& s, const std::string& call, Build build) {
  uint8_t buf[kRequestCap];
  MsgBuilder b(buf, sizeof buf);
  if (!build(b)) throw SysError(EMSGSIZE, call);
  return s.request(b, call);
}

std::string index_ref(int ifindex) { return "#" + std::to_string(ifindex); }

// The link's name for an error's text, or "#7" when it has none any more. A
// failed lookup must not hide the error being reported, so it is swallowed.
std::string dev_name(Socket& s, int ifindex) {
  try {
    return link_get(s, ifindex).name;
  } catch (const SysError&) {
    return index_ref(ifindex);
  }
}

// A request that names link `ifindex` (0: none). `describe(dev)` writes its
// `ip` command with `dev` as the link's word; on failure the error is thrown
// again with the link's name in it, keeping the socket's note ("(sendto)").
template <class Describe, class Build>
void transact_on_link(Socket& s, int ifindex, Describe describe, Build build) {
  const std::string by_index = describe(index_ref(ifindex));
  try {
    transact(s, by_index, build);
  } catch (const SysError& e) {
    if (ifindex <= 0) throw;
    const std::string& call = e.call();
    std::string note = call.compare(0, by_index.size(), by_index) == 0 ? call.substr(by_index.size()) : "";
    throw SysError(e.err(), describe(dev_name(s, ifindex)) + note, e.ext_ack());
  }
}

void addr_modify(Socket& s, Op op, const Addr& a) {
  transact_on_link(
      s, a.ifindex, [&](const std::string& dev) { return describe_addr(op, a, dev); },
      [&](MsgBuilder& b) { return build_addr(b, op, a); });
}

void route_modify(Socket& s, Op op, const Route& r) {
  transact_on_link(
      s, r.oif, [&](const std::string& dev) { return describe_route(op, r, dev); },
      [&](MsgBuilder& b) { return build_route(b, op, r); });
}

}  // namespace

Link link_get(Socket& s, const std::string& name) {
  const std::string call = "link " + name;
  // No link can have such a name; say so the way the kernel would for a
  // name that merely does not exist.
  if (name.empty() || name.size() >= IFNAMSIZ) throw SysError(ENODEV, call);
  auto replies = transact(s, call, [&](MsgBuilder& b) { return build_link_get(b, 0, name); });
  return first_reply<Link>(replies, RTM_NEWLINK, parse_link, call);
}

Link link_get(Socket& s, int ifindex) {
  const std::string call = "link " + std::to_string(ifindex);
  if (ifindex <= 0) throw SysError(ENODEV, call);
  auto replies = transact(s, call, [&](MsgBuilder& b) { return build_link_get(b, ifindex, ""); });
  return first_reply<Link>(replies, RTM_NEWLINK, parse_link, call);
}

std::vector<Link> link_list(Socket& s) {
  const std::string call = "ip link show";
  return all_replies<Link>(transact(s, call, build_link_dump), RTM_NEWLINK, parse_link, call);
}

void link_set_up(Socket& s, int ifindex, bool up) {
  transact_on_link(
      s, ifindex, [&](const std::string& dev) { return "ip link set dev " + dev + (up ? " up" : " down"); },
      [&](MsgBuilder& b) { return build_link_set_up(b, ifindex, up); });
}

void link_set_mtu(Socket& s, int ifindex, uint32_t mtu) {
  transact_on_link(
      s, ifindex, [&](const std::string& dev) { return "ip link set dev " + dev + " mtu " + std::to_string(mtu); },
      [&](MsgBuilder& b) { return build_link_set_mtu(b, ifindex, mtu); });
}

void addr_add(Socket& s, const Addr& a) { addr_modify(s, Op::add, a); }
void addr_replace(Socket& s, const Addr& a) { addr_modify(s, Op::replace, a); }
void addr_del(Socket& s, const Addr& a) { addr_modify(s, Op::del, a); }

std::vector<Addr> addr_list(Socket& s, int ifindex) {
  const std::string call = "ip -4 addr show";
  auto all = all_replies<Addr>(transact(s, call, build_addr_dump), RTM_NEWADDR, parse_addr, call);
  if (ifindex == 0) return all;
  std::vector<Addr> out;
  for (auto& a : all) {
    if (a.ifindex == ifindex) out.push_back(std::move(a));
  }
  return out;
}

void route_add(Socket& s, const Route& r) { route_modify(s, Op::add, r); }
void route_replace(Socket& s, const Route& r) { route_modify(s, Op::replace, r); }
void route_del(Socket& s, const Route& r) { route_modify(s, Op::del, r); }

std::vector<Route> route_list(Socket& s) {
  const std::string call = "ip -4 route show";
  // The dump covers every table (local, main, default, ...); without strict
  // checking the kernel cannot filter, so we do.
  auto all = all_replies<Route>(transact(s, call, build_route_dump), RTM_NEWROUTE, parse_route, call);
  std::vector<Route> out;
  for (auto& r : all) {
    if (r.table == RT_TABLE_MAIN && r.type == RTN_UNICAST) out.push_back(std::move(r));
  }
  return out;
}

Route route_get(Socket& s, const Ip4& dst) {
  const std::string call = "ip route get " + format_ip4(dst);
  auto replies = transact(s, call, [&](MsgBuilder& b) { return build_route_get(b, dst); });
  return first_reply<Route>(replies, RTM_NEWROUTE, parse_route, call);
}

int default_route_link(Socket& s) {
  const Route* best = nullptr;
  std::vector<Route> routes = route_list(s);
  for (const Route& r : routes) {
    if (r.dst_len != 0 || r.oif <= 0) continue;
    if (!best || r.priority.value_or(0) < best->priority.value_or(0)) best = &r;
  }
  if (!best) throw SysError(ENETUNREACH, "default route");
  return best->oif;
}

}  // namespace weft::nl
