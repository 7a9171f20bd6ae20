#include "core/netlink.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

#include "core/sys_error.h"

namespace weft::nl {

namespace {

constexpr size_t align4(size_t n) { return (n + 3) & ~static_cast<size_t>(3); }

// The family headers are multiples of 4 already; align anyway so a header
// that is not would still leave the attributes where the kernel puts them.
constexpr size_t kIfinfoLen = NLMSG_ALIGN(sizeof(ifinfomsg));
constexpr size_t kIfaddrLen = NLMSG_ALIGN(sizeof(ifaddrmsg));
constexpr size_t kRtmsgLen = NLMSG_ALIGN(sizeof(rtmsg));

// Big enough for any request we build (the largest, a route, is ~100 bytes).
constexpr size_t kRequestCap = 512;

// The kernel sizes a dump's datagrams by the largest buffer we have passed
// to recvmsg, capped a little under 32 KiB; start there so most dumps fit
// without the peek having to grow the buffer.
constexpr size_t kRxInitial = 32768;

// Reads the message header of `buf` if it holds one whole message; nullptr
// payload if not. Only the first message counts: trailing bytes are ignored.
struct OneMsg {
  nlmsghdr hdr{};
  const uint8_t* payload = nullptr;
  size_t payload_len = 0;
};

bool read_one(const uint8_t* buf, size_t len, OneMsg& out) {
  if (buf == nullptr || len < NLMSG_HDRLEN) return false;
  std::memcpy(&out.hdr, buf, sizeof(nlmsghdr));
  if (out.hdr.nlmsg_len < NLMSG_HDRLEN || out.hdr.nlmsg_len > len) return false;
  out.payload = buf + NLMSG_HDRLEN;
  out.payload_len = out.hdr.nlmsg_len - NLMSG_HDRLEN;
  return true;
}

// Reads attribute payloads into optionals; any one of the wrong size makes
// the whole record malformed.
template <class T>
bool take(std::optional<T> v, T& out) {
  if (!v) return false;
  out = *v;
  return true;
}

template <class T>
bool take(std::optional<T> v, std::optional<T>& out) {
  if (!v) return false;
  out = v;
  return true;
}

// RTA_MULTIPATH: an array of rtnexthop, each followed by its own attributes.
// We keep the first hop's device and gateway (for a route that has none at
// the top level) and only check the rest for sane lengths.
bool parse_multipath(const uint8_t* p, size_t len, Route& r) {
  bool first = true;
  while (len > 0) {
    if (len < sizeof(rtnexthop)) return false;
    rtnexthop nh;
    std::memcpy(&nh, p, sizeof nh);
    // A negative ifindex is never the kernel's; RTA_OIF rejects it too.
    if (nh.rtnh_len < sizeof(rtnexthop) || nh.rtnh_len > len || nh.rtnh_ifindex < 0) return false;
    size_t hdr = RTNH_ALIGN(sizeof(rtnexthop));
    if (hdr > nh.rtnh_len) return false;
    AttrIter it(p + hdr, nh.rtnh_len - hdr);
    Attr a;
    std::optional<Ip4> gw;
    while (it.next(a)) {
      if (a.type == RTA_GATEWAY && !take(a.ip4(), gw)) return false;
    }
    if (it.bad()) return false;
    if (first && r.oif == 0 && !r.gateway) {
      r.oif = nh.rtnh_ifindex;
      r.gateway = gw;
    }
    first = false;
    size_t step = std::min(static_cast<size_t>(RTNH_ALIGN(nh.rtnh_len)), len);
    p += step;
    len -= step;
  }
  return true;
}

std::string scope_name(uint8_t scope) {
  switch (scope) {
    case RT_SCOPE_UNIVERSE: return "global";
    case RT_SCOPE_SITE: return "site";
    case RT_SCOPE_LINK: return "link";
    case RT_SCOPE_HOST: return "host";
    case RT_SCOPE_NOWHERE: return "nowhere";
    default: return std::to_string(scope);
  }
}

const char* op_name(Op op) {
  switch (op) {
    case Op::add: return "add";
    case Op::replace: return "replace";
    case Op::del: return "del";
  }
  return "?";
}

uint16_t op_flags(Op op) {
  switch (op) {
    case Op::add: return NLM_F_CREATE | NLM_F_EXCL;
    case Op::replace: return NLM_F_CREATE | NLM_F_REPLACE;
    case Op::del: return 0;
  }
  return 0;
}

std::string describe_addr(Op op, const Addr& a) {
  std::string s = std::string("ip addr ") + op_name(op) + " " + format_ip4(a.address) + "/" +
                  std::to_string(a.prefix_len) + " dev " + std::to_string(a.ifindex);
  if (!a.label.empty()) s += " label " + a.label;
  return s;
}

// The first message of `type` among the replies, parsed, or EPROTO.
template <class T, class Parse>
T first_reply(const std::vector<std::vector<uint8_t>>& replies, uint16_t type, Parse parse,
              const std::string& call) {
  for (const auto& m : replies) {
    nlmsghdr h;
    if (m.size() < sizeof h) continue;
    std::memcpy(&h, m.data(), sizeof h);
    if (h.nlmsg_type != type) continue;
    std::optional<T> v = parse(m.data(), m.size());
    if (!v) throw SysError(EPROTO, call + " (malformed reply)");
    return *v;
  }
  throw SysError(EPROTO, call + " (no reply)");
}

template <class T, class Parse>
std::vector<T> all_replies(const std::vector<std::vector<uint8_t>>& replies, uint16_t type,
                           Parse parse, const std::string& call) {
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

}  // namespace

// ---------------------------------------------------------------------------
// Values

std::optional<Ip4> parse_ip4(const std::string& s) {
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  Ip4 out;
  std::memcpy(out.data(), &a, 4);
  return out;
}

std::string format_ip4(const Ip4& a) {
  char buf[INET_ADDRSTRLEN];
  in_addr in;
  std::memcpy(&in, a.data(), 4);
  if (inet_ntop(AF_INET, &in, buf, sizeof buf) == nullptr) return "?";
  return buf;
}

std::string format_mac(const Mac& m) {
  static const char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(17);
  for (size_t i = 0; i < m.size(); i++) {
    if (i) s += ':';
    s += hex[m[i] >> 4];
    s += hex[m[i] & 0xf];
  }
  return s;
}

bool Link::up() const { return (flags & IFF_UP) != 0; }

std::string describe_route(Op op, const Route& r) {
  std::string s = std::string("ip route ") + op_name(op) + " ";
  if (r.dst_len == 0 && r.dst == Ip4{}) {
    s += "default";
  } else {
    s += format_ip4(r.dst) + "/" + std::to_string(r.dst_len);
  }
  if (r.gateway) s += " via " + format_ip4(*r.gateway);
  if (r.oif) s += " dev " + std::to_string(r.oif);
  if (r.table != RT_TABLE_MAIN) s += " table " + std::to_string(r.table);
  if (r.protocol) s += " proto " + std::to_string(*r.protocol);
  if (r.scope) s += " scope " + scope_name(*r.scope);
  if (r.priority) s += " metric " + std::to_string(*r.priority);
  if (r.prefsrc) s += " src " + format_ip4(*r.prefsrc);
  if (r.onlink) s += " onlink";
  return s;
}

// ---------------------------------------------------------------------------
// Level 1: building

MsgBuilder::MsgBuilder(uint8_t* buf, size_t cap) : buf_(buf), cap_(buf ? cap : 0) {}

bool MsgBuilder::begin(uint16_t type, uint16_t flags) {
  len_ = 0;
  ok_ = cap_ >= NLMSG_HDRLEN;
  if (!ok_) return false;
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_HDRLEN;
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  std::memcpy(buf_, &h, sizeof h);
  len_ = NLMSG_HDRLEN;
  return true;
}

bool MsgBuilder::reserve(size_t n, uint8_t** at) {
  if (!ok_) return false;
  // n first, so align4 cannot wrap.
  if (n > cap_ - len_ || align4(n) > cap_ - len_ || len_ + align4(n) > UINT32_MAX) {
    ok_ = false;
    return false;
  }
  *at = buf_ + len_;
  std::memset(*at, 0, align4(n));
  len_ += align4(n);
  sync_len();
  return true;
}

void MsgBuilder::sync_len() {
  uint32_t len = static_cast<uint32_t>(len_);
  std::memcpy(buf_ + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
}

bool MsgBuilder::header(const void* data, size_t len) {
  uint8_t* at;
  if (!reserve(len, &at)) return false;
  if (len) std::memcpy(at, data, len);
  return true;
}

bool MsgBuilder::attr(uint16_t type, const void* data, size_t len) {
  if (len > UINT16_MAX - NLA_HDRLEN) {
    ok_ = false;
    return false;
  }
  uint8_t* at;
  if (!reserve(NLA_HDRLEN + len, &at)) return false;
  nlattr a;
  a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  a.nla_type = type;
  std::memcpy(at, &a, sizeof a);
  if (len) std::memcpy(at + NLA_HDRLEN, data, len);
  return true;
}

bool MsgBuilder::attr_u8(uint16_t type, uint8_t v) { return attr(type, &v, sizeof v); }
bool MsgBuilder::attr_u16(uint16_t type, uint16_t v) { return attr(type, &v, sizeof v); }
bool MsgBuilder::attr_u32(uint16_t type, uint32_t v) { return attr(type, &v, sizeof v); }
bool MsgBuilder::attr_ip4(uint16_t type, const Ip4& a) { return attr(type, a.data(), a.size()); }
bool MsgBuilder::attr_str(uint16_t type, const std::string& s) {
  return attr(type, s.c_str(), s.size() + 1);
}

size_t MsgBuilder::nest_begin(uint16_t type) {
  size_t at = len_;
  if (!attr(type | NLA_F_NESTED, nullptr, 0)) return 0;
  return at;
}

bool MsgBuilder::nest_end(size_t offset) {
  if (!ok_) return false;
  if (offset < NLMSG_HDRLEN || offset + NLA_HDRLEN > len_ || len_ - offset > UINT16_MAX) {
    ok_ = false;
    return false;
  }
  uint16_t len = static_cast<uint16_t>(len_ - offset);
  std::memcpy(buf_ + offset + offsetof(nlattr, nla_len), &len, sizeof len);
  return true;
}

void MsgBuilder::set_seq(uint32_t seq) {
  if (len_ >= NLMSG_HDRLEN) std::memcpy(buf_ + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
}

void MsgBuilder::set_pid(uint32_t pid) {
  if (len_ >= NLMSG_HDRLEN) std::memcpy(buf_ + offsetof(nlmsghdr, nlmsg_pid), &pid, sizeof pid);
}

void MsgBuilder::add_flags(uint16_t flags) {
  if (len_ < NLMSG_HDRLEN) return;
  uint16_t f;
  std::memcpy(&f, buf_ + offsetof(nlmsghdr, nlmsg_flags), sizeof f);
  f |= flags;
  std::memcpy(buf_ + offsetof(nlmsghdr, nlmsg_flags), &f, sizeof f);
}

bool build_link_get(MsgBuilder& b, int ifindex, const std::string& name) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  b.begin(RTM_GETLINK, NLM_F_REQUEST);
  b.header(&ifi, sizeof ifi);
  if (!name.empty()) b.attr_str(IFLA_IFNAME, name);
  b.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return b.ok();
}

bool build_link_dump(MsgBuilder& b) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  b.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
  b.header(&ifi, sizeof ifi);
  b.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return b.ok();
}

bool build_link_set_up(MsgBuilder& b, int ifindex, bool up) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = up ? IFF_UP : 0;
  ifi.ifi_change = IFF_UP;
  b.begin(RTM_NEWLINK, NLM_F_REQUEST);
  b.header(&ifi, sizeof ifi);
  return b.ok();
}

bool build_link_set_mtu(MsgBuilder& b, int ifindex, uint32_t mtu) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  b.begin(RTM_NEWLINK, NLM_F_REQUEST);
  b.header(&ifi, sizeof ifi);
  b.attr_u32(IFLA_MTU, mtu);
  return b.ok();
}

bool build_addr(MsgBuilder& b, Op op, const Addr& a) {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = a.prefix_len;
  ifa.ifa_scope = a.scope;
  ifa.ifa_index = static_cast<uint32_t>(a.ifindex);
  b.begin(op == Op::del ? RTM_DELADDR : RTM_NEWADDR, NLM_F_REQUEST | op_flags(op));
  b.header(&ifa, sizeof ifa);
  // Like `ip addr add`: local and address are the same on a non-p2p link.
  b.attr_ip4(IFA_LOCAL, a.address);
  b.attr_ip4(IFA_ADDRESS, a.address);
  if (!a.label.empty()) b.attr_str(IFA_LABEL, a.label);
  return b.ok();
}

bool build_addr_dump(MsgBuilder& b) {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  b.begin(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
  b.header(&ifa, sizeof ifa);
  return b.ok();
}

bool build_route(MsgBuilder& b, Op op, const Route& r) {
  const bool del = op == Op::del;
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = r.dst_len;
  rt.rtm_table = static_cast<uint8_t>(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
  // The defaults of `ip route` (iproute_modify): for a delete, protocol and
  // scope are wildcards the kernel matches anything against.
  rt.rtm_protocol = r.protocol ? *r.protocol : (del ? RTPROT_UNSPEC : RTPROT_BOOT);
  if (r.scope) {
    rt.rtm_scope = *r.scope;
  } else if (del) {
    rt.rtm_scope = RT_SCOPE_NOWHERE;
  } else {
    rt.rtm_scope = r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  }
  rt.rtm_type = r.type;
  rt.rtm_flags = r.onlink ? RTNH_F_ONLINK : 0;
  b.begin(del ? RTM_DELROUTE : RTM_NEWROUTE, NLM_F_REQUEST | op_flags(op));
  b.header(&rt, sizeof rt);
  if (r.dst_len > 0) b.attr_ip4(RTA_DST, r.dst);
  if (r.table >= 256) b.attr_u32(RTA_TABLE, r.table);
  if (r.gateway) b.attr_ip4(RTA_GATEWAY, *r.gateway);
  if (r.oif) b.attr_u32(RTA_OIF, static_cast<uint32_t>(r.oif));
  if (r.prefsrc) b.attr_ip4(RTA_PREFSRC, *r.prefsrc);
  if (r.priority) b.attr_u32(RTA_PRIORITY, *r.priority);
  return b.ok();
}

bool build_route_dump(MsgBuilder& b) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  b.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP);
  b.header(&rt, sizeof rt);
  return b.ok();
}

bool build_route_get(MsgBuilder& b, const Ip4& dst) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = 32;
  b.begin(RTM_GETROUTE, NLM_F_REQUEST);
  b.header(&rt, sizeof rt);
  b.attr_ip4(RTA_DST, dst);
  return b.ok();
}

// ---------------------------------------------------------------------------
// Level 1: parsing

bool MsgIter::next(Msg& m) {
  if (bad_ || left_ == 0) return false;
  if (left_ < NLMSG_HDRLEN) {
    bad_ = true;
    return false;
  }
  nlmsghdr h;
  std::memcpy(&h, p_, sizeof h);
  if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left_) {
    bad_ = true;
    return false;
  }
  m.type = h.nlmsg_type;
  m.flags = h.nlmsg_flags;
  m.seq = h.nlmsg_seq;
  m.pid = h.nlmsg_pid;
  m.data = p_;
  m.len = h.nlmsg_len;
  size_t step = std::min(align4(h.nlmsg_len), left_);
  p_ += step;
  left_ -= step;
  return true;
}

bool parse_messages(const uint8_t* buf, size_t len, std::vector<Msg>& out) {
  if (buf == nullptr) return len == 0;
  MsgIter it(buf, len);
  Msg m;
  while (it.next(m)) out.push_back(m);
  return !it.bad();
}

bool AttrIter::next(Attr& a) {
  if (bad_ || left_ == 0) return false;
  if (p_ == nullptr || left_ < NLA_HDRLEN) {
    bad_ = true;
    return false;
  }
  nlattr h;
  std::memcpy(&h, p_, sizeof h);
  if (h.nla_len < NLA_HDRLEN || h.nla_len > left_) {
    bad_ = true;
    return false;
  }
  a.type = h.nla_type & NLA_TYPE_MASK;
  a.nested = (h.nla_type & NLA_F_NESTED) != 0;
  a.data = p_ + NLA_HDRLEN;
  a.len = h.nla_len - NLA_HDRLEN;
  size_t step = std::min(align4(h.nla_len), left_);
  p_ += step;
  left_ -= step;
  return true;
}

std::optional<uint8_t> Attr::u8() const {
  if (len != 1) return std::nullopt;
  return data[0];
}

std::optional<uint16_t> Attr::u16() const {
  if (len != 2) return std::nullopt;
  uint16_t v;
  std::memcpy(&v, data, 2);
  return v;
}

std::optional<uint32_t> Attr::u32() const {
  if (len != 4) return std::nullopt;
  uint32_t v;
  std::memcpy(&v, data, 4);
  return v;
}

std::optional<Ip4> Attr::ip4() const {
  if (len != 4) return std::nullopt;
  Ip4 v;
  std::memcpy(v.data(), data, 4);
  return v;
}

std::string Attr::str() const {
  if (len == 0) return std::string();
  const void* nul = std::memchr(data, 0, len);
  size_t n = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - data) : len;
  return std::string(reinterpret_cast<const char*>(data), n);
}

std::optional<Link> parse_link(const uint8_t* buf, size_t len) {
  OneMsg m;
  if (!read_one(buf, len, m)) return std::nullopt;
  if (m.hdr.nlmsg_type != RTM_NEWLINK && m.hdr.nlmsg_type != RTM_DELLINK) return std::nullopt;
  if (m.payload_len < kIfinfoLen) return std::nullopt;
  ifinfomsg ifi;
  std::memcpy(&ifi, m.payload, sizeof ifi);
  Link l;
  l.index = ifi.ifi_index;
  l.flags = ifi.ifi_flags;
  bool named = false;
  AttrIter it(m.payload + kIfinfoLen, m.payload_len - kIfinfoLen);
  Attr a;
  while (it.next(a)) {
    switch (a.type) {
      case IFLA_IFNAME:
        l.name = a.str();
        named = true;
        break;
      case IFLA_MTU:
        if (!take(a.u32(), l.mtu)) return std::nullopt;
        break;
      case IFLA_ADDRESS:
        if (a.len == 6) {
          Mac mac;
          std::memcpy(mac.data(), a.data, 6);
          l.mac = mac;
        }
        break;
      case IFLA_LINKINFO: {
        AttrIter info(a.data, a.len);
        Attr i;
        while (info.next(i)) {
          if (i.type == IFLA_INFO_KIND) l.kind = i.str();
        }
        if (info.bad()) return std::nullopt;
        break;
      }
      default:
        break;
    }
  }
  if (it.bad() || !named || l.index <= 0) return std::nullopt;
  return l;
}

std::optional<Addr> parse_addr(const uint8_t* buf, size_t len) {
  OneMsg m;
  if (!read_one(buf, len, m)) return std::nullopt;
  if (m.hdr.nlmsg_type != RTM_NEWADDR && m.hdr.nlmsg_type != RTM_DELADDR) return std::nullopt;
  if (m.payload_len < kIfaddrLen) return std::nullopt;
  ifaddrmsg ifa;
  std::memcpy(&ifa, m.payload, sizeof ifa);
  if (ifa.ifa_family != AF_INET || ifa.ifa_prefixlen > 32 || ifa.ifa_index > INT_MAX) {
    return std::nullopt;
  }
  Addr out;
  out.ifindex = static_cast<int>(ifa.ifa_index);
  out.prefix_len = ifa.ifa_prefixlen;
  out.scope = ifa.ifa_scope;
  out.flags = ifa.ifa_flags;
  std::optional<Ip4> local, address;
  AttrIter it(m.payload + kIfaddrLen, m.payload_len - kIfaddrLen);
  Attr a;
  while (it.next(a)) {
    switch (a.type) {
      case IFA_LOCAL:
        if (!take(a.ip4(), local)) return std::nullopt;
        break;
      case IFA_ADDRESS:
        if (!take(a.ip4(), address)) return std::nullopt;
        break;
      case IFA_LABEL:
        out.label = a.str();
        break;
      case IFA_FLAGS:
        if (!take(a.u32(), out.flags)) return std::nullopt;
        break;
      default:
        break;
    }
  }
  if (it.bad()) return std::nullopt;
  // On a point-to-point link IFA_ADDRESS is the peer; ours is IFA_LOCAL.
  if (local) {
    out.address = *local;
  } else if (address) {
    out.address = *address;
  } else {
    return std::nullopt;
  }
  return out;
}

std::optional<Route> parse_route(const uint8_t* buf, size_t len) {
  OneMsg m;
  if (!read_one(buf, len, m)) return std::nullopt;
  if (m.hdr.nlmsg_type != RTM_NEWROUTE && m.hdr.nlmsg_type != RTM_DELROUTE) return std::nullopt;
  if (m.payload_len < kRtmsgLen) return std::nullopt;
  rtmsg rt;
  std::memcpy(&rt, m.payload, sizeof rt);
  if (rt.rtm_family != AF_INET || rt.rtm_dst_len > 32) return std::nullopt;
  Route r;
  r.dst_len = rt.rtm_dst_len;
  r.table = rt.rtm_table;
  r.protocol = rt.rtm_protocol;
  r.scope = rt.rtm_scope;
  r.type = rt.rtm_type;
  r.onlink = (rt.rtm_flags & RTNH_F_ONLINK) != 0;
  const uint8_t* multipath = nullptr;
  size_t multipath_len = 0;
  AttrIter it(m.payload + kRtmsgLen, m.payload_len - kRtmsgLen);
  Attr a;
  while (it.next(a)) {
    switch (a.type) {
      case RTA_DST:
        if (!take(a.ip4(), r.dst)) return std::nullopt;
        break;
      case RTA_GATEWAY:
        if (!take(a.ip4(), r.gateway)) return std::nullopt;
        break;
      case RTA_OIF: {
        uint32_t oif;
        if (!take(a.u32(), oif) || oif > INT_MAX) return std::nullopt;
        r.oif = static_cast<int>(oif);
        break;
      }
      case RTA_TABLE:
        if (!take(a.u32(), r.table)) return std::nullopt;
        break;
      case RTA_PREFSRC:
        if (!take(a.ip4(), r.prefsrc)) return std::nullopt;
        break;
      case RTA_PRIORITY:
        if (!take(a.u32(), r.priority)) return std::nullopt;
        break;
      case RTA_MULTIPATH:
        multipath = a.data;
        multipath_len = a.len;
        break;
      default:
        break;
    }
  }
  if (it.bad()) return std::nullopt;
  // After the walk, so a top-level RTA_OIF or RTA_GATEWAY that comes later
  // still wins over the first hop.
  if (multipath && !parse_multipath(multipath, multipath_len, r)) return std::nullopt;
  return r;
}

bool parse_ack(const Msg& m, Ack& out) {
  if (m.type != NLMSG_ERROR && m.type != NLMSG_DONE) return false;
  if (m.data == nullptr || m.len < NLMSG_HDRLEN) return false;
  const uint8_t* p = m.payload();
  size_t len = m.payload_len();
  int error;
  if (len < sizeof error) return false;
  std::memcpy(&error, p, sizeof error);
  // Negative errno; anything else is nonsense, and -INT_MIN would overflow.
  out.err = (error <= 0 && error != INT_MIN) ? -error : EPROTO;
  out.msg.clear();
  if (!(m.flags & NLM_F_ACK_TLVS)) return true;

  size_t tlv;
  if (m.type == NLMSG_DONE) {
    tlv = NLMSG_ALIGN(sizeof error);
  } else {
    // nlmsgerr echoes our header, then (unless capped) our payload, then
    // the TLVs.
    if (len < sizeof(nlmsgerr)) return true;
    nlmsghdr echoed;
    std::memcpy(&echoed, p + offsetof(nlmsgerr, msg), sizeof echoed);
    size_t body = 0;
    if (!(m.flags & NLM_F_CAPPED)) {
      if (echoed.nlmsg_len < NLMSG_HDRLEN) return true;
      body = echoed.nlmsg_len - NLMSG_HDRLEN;
    }
    tlv = align4(sizeof(nlmsgerr) + body);
  }
  if (tlv > len) return true;  // no room for TLVs: keep the errno anyway
  AttrIter it(p + tlv, len - tlv);
  Attr a;
  while (it.next(a)) {
    if (a.type == NLMSGERR_ATTR_MSG) out.msg = a.str();
  }
  // The kernel's text often ends in a newline or space; the errno is what
  // matters, so a bad TLV just loses the text.
  while (!out.msg.empty() && (out.msg.back() == '\n' || out.msg.back() == ' ')) out.msg.pop_back();
  return true;
}

// ---------------------------------------------------------------------------
// Level 2: the socket

Socket::Socket() : seq_(static_cast<uint32_t>(std::time(nullptr))) {
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) throw SysError(errno, "socket(AF_NETLINK, NETLINK_ROUTE)");
  auto fail = [this](const char* call) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw SysError(err, call);
  };
  int one = 1;
  // Both are best effort: a kernel without them still answers, only with
  // less to say (no ext-ack text) or more to read (our request echoed).
  (void)::setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // The kernel always answers; the timeout is only so that a bug here can
  // never hang the Node main thread for good.
  timeval tv{};
  tv.tv_sec = 10;
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) fail("setsockopt(SO_RCVTIMEO)");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) fail("bind(AF_NETLINK)");
  socklen_t sl = sizeof sa;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &sl) < 0) fail("getsockname(AF_NETLINK)");
  port_ = sa.nl_pid;
  rx_.resize(kRxInitial);
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

size_t Socket::recv_datagram(const std::string& call) {
  for (;;) {
    sockaddr_nl sa{};
    iovec iov{rx_.data(), rx_.size()};
    msghdr mh{};
    mh.msg_name = &sa;
    mh.msg_namelen = sizeof sa;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    // Peek at the real size first so a large datagram grows the buffer
    // instead of being cut.
    ssize_t n = ::recvmsg(fd_, &mh, MSG_PEEK | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) throw SysError(ETIMEDOUT, call + " (no reply)");
      throw SysError(errno, call + " (recvmsg)");
    }
    if (static_cast<size_t>(n) > rx_.size()) {
      rx_.resize(static_cast<size_t>(n));
      continue;
    }
    iov = iovec{rx_.data(), rx_.size()};
    mh.msg_namelen = sizeof sa;
    mh.msg_flags = 0;
    n = ::recvmsg(fd_, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(errno, call + " (recvmsg)");
    }
    if (mh.msg_flags & MSG_TRUNC) throw SysError(EMSGSIZE, call + " (recvmsg)");
    if (sa.nl_pid != 0) continue;  // not from the kernel
    return static_cast<size_t>(n);
  }
}

std::vector<std::vector<uint8_t>> Socket::request_once(MsgBuilder& req, const std::string& call,
                                                       bool* interrupted) {
  if (!req.ok()) throw SysError(EMSGSIZE, call);
  nlmsghdr h;
  std::memcpy(&h, req.data(), sizeof h);
  const bool dump = (h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  const uint32_t seq = ++seq_;
  req.set_seq(seq);
  req.set_pid(0);
  if (!dump) req.add_flags(NLM_F_ACK);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = ::sendto(fd_, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                         sizeof kernel);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    throw SysError(errno, call + " (sendto)");
  }

  std::vector<std::vector<uint8_t>> out;
  for (;;) {
    size_t n = recv_datagram(call);
    MsgIter it(rx_.data(), n);
    Msg m;
    while (it.next(m)) {
      // A late answer to an earlier request on this socket: not ours.
      if (m.seq != seq || m.pid != port_) continue;
      if (m.flags & NLM_F_DUMP_INTR) *interrupted = true;
      if (m.type == NLMSG_NOOP) continue;
      if (m.type == NLMSG_OVERRUN) throw SysError(ENOBUFS, call);
      if (m.type == NLMSG_ERROR || m.type == NLMSG_DONE) {
        Ack ack;
        // An old kernel's NLMSG_DONE may carry no errno: that is success.
        if (!parse_ack(m, ack)) {
          if (m.type == NLMSG_ERROR) throw SysError(EPROTO, call + " (malformed ack)");
          ack = Ack{};
        }
        if (ack.err) throw SysError(ack.err, call, ack.msg);
        if (m.type == NLMSG_DONE || !dump) return out;
        continue;
      }
      // A dump's records, or a get's answer (its ack follows).
      out.emplace_back(m.data, m.data + m.len);
    }
    if (it.bad()) throw SysError(EPROTO, call + " (malformed reply)");
  }
}

std::vector<std::vector<uint8_t>> Socket::request(MsgBuilder& req, const std::string& call) {
  // A dump that raced with a change is marked; a few tries always settle on
  // a control plane that changes a route every few seconds at most.
  for (int attempt = 0; attempt < 4; attempt++) {
    bool interrupted = false;
    auto out = request_once(req, call, &interrupted);
    if (!interrupted) return out;
  }
  throw SysError(EINTR, call + " (dump kept changing)");
}

// ---------------------------------------------------------------------------
// Level 2: the verbs

namespace {

template <class Build>
std::vector<std::vector<uint8_t>> run(Socket& s, const std::string& call, Build build) {
  uint8_t buf[kRequestCap];
  MsgBuilder b(buf, sizeof buf);
  if (!build(b)) throw SysError(EMSGSIZE, call);
  return s.request(b, call);
}

void addr_modify(Socket& s, Op op, const Addr& a) {
  run(s, describe_addr(op, a), [&](MsgBuilder& b) { return build_addr(b, op, a); });
}

void route_modify(Socket& s, Op op, const Route& r) {
  run(s, describe_route(op, r), [&](MsgBuilder& b) { return build_route(b, op, r); });
}

}  // namespace

// ip link show dev NAME
Link link_get(Socket& s, const std::string& name) {
  const std::string call = "link " + name;
  // No link can have such a name; say so the way the kernel would for a
  // name that merely does not exist.
  if (name.empty() || name.size() >= IFNAMSIZ) throw SysError(ENODEV, call);
  auto replies = run(s, call, [&](MsgBuilder& b) { return build_link_get(b, 0, name); });
  return first_reply<Link>(replies, RTM_NEWLINK, parse_link, call);
}

// ip link show dev #INDEX
Link link_get(Socket& s, int ifindex) {
  const std::string call = "link " + std::to_string(ifindex);
  if (ifindex <= 0) throw SysError(ENODEV, call);
  auto replies = run(s, call, [&](MsgBuilder& b) { return build_link_get(b, ifindex, ""); });
  return first_reply<Link>(replies, RTM_NEWLINK, parse_link, call);
}

// ip link show
std::vector<Link> link_list(Socket& s) {
  const std::string call = "ip link show";
  return all_replies<Link>(run(s, call, build_link_dump), RTM_NEWLINK, parse_link, call);
}

// ip link set dev flannel.1 up
void link_set_up(Socket& s, int ifindex, bool up) {
  const std::string call =
      "ip link set dev " + std::to_string(ifindex) + (up ? " up" : " down");
  run(s, call, [&](MsgBuilder& b) { return build_link_set_up(b, ifindex, up); });
}

// ip link set dev flannel.1 mtu 1450
void link_set_mtu(Socket& s, int ifindex, uint32_t mtu) {
  const std::string call =
      "ip link set dev " + std::to_string(ifindex) + " mtu " + std::to_string(mtu);
  run(s, call, [&](MsgBuilder& b) { return build_link_set_mtu(b, ifindex, mtu); });
}

// ip addr add 10.244.3.0/32 dev flannel.1
void addr_add(Socket& s, const Addr& a) { addr_modify(s, Op::add, a); }
// ip addr replace 10.244.3.0/32 dev flannel.1
void addr_replace(Socket& s, const Addr& a) { addr_modify(s, Op::replace, a); }
// ip addr del 10.244.3.0/32 dev flannel.1
void addr_del(Socket& s, const Addr& a) { addr_modify(s, Op::del, a); }

// ip -4 addr show [dev IFINDEX]
std::vector<Addr> addr_list(Socket& s, int ifindex) {
  const std::string call = "ip -4 addr show";
  auto all = all_replies<Addr>(run(s, call, build_addr_dump), RTM_NEWADDR, parse_addr, call);
  if (ifindex == 0) return all;
  std::vector<Addr> out;
  for (auto& a : all) {
    if (a.ifindex == ifindex) out.push_back(std::move(a));
  }
  return out;
}

// ip route add 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink
void route_add(Socket& s, const Route& r) { route_modify(s, Op::add, r); }
// ip route replace 10.244.3.0/24 dev flannel.1
void route_replace(Socket& s, const Route& r) { route_modify(s, Op::replace, r); }
// ip route del 10.244.3.0/24 dev flannel.1
void route_del(Socket& s, const Route& r) { route_modify(s, Op::del, r); }

// ip -4 route show table main type unicast
std::vector<Route> route_list(Socket& s) {
  const std::string call = "ip -4 route show";
  // The dump covers every table (local, main, default, ...); without strict
  // checking the kernel cannot filter, so we do.
  auto all = all_replies<Route>(run(s, call, build_route_dump), RTM_NEWROUTE, parse_route, call);
  std::vector<Route> out;
  for (auto& r : all) {
    if (r.table == RT_TABLE_MAIN && r.type == RTN_UNICAST) out.push_back(std::move(r));
  }
  return out;
}

// ip route get 1.2.3.4
Route route_get(Socket& s, const Ip4& dst) {
  const std::string call = "ip route get " + format_ip4(dst);
  auto replies = run(s, call, [&](MsgBuilder& b) { return build_route_get(b, dst); });
  return first_reply<Route>(replies, RTM_NEWROUTE, parse_route, call);
}

// ip -4 route show default   (the one with the lowest metric)
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
