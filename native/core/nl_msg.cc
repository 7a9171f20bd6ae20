#include "core/nl_msg.h"

#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace weft::nl {

namespace {

constexpr size_t align4(size_t n) { return (n + 3) & ~static_cast<size_t>(3); }

// The family headers are multiples of 4 already; align anyway so a header
// that is not would still leave the attributes where the kernel puts them.
constexpr size_t kIfinfoLen = NLMSG_ALIGN(sizeof(ifinfomsg));
constexpr size_t kIfaddrLen = NLMSG_ALIGN(sizeof(ifaddrmsg));
constexpr size_t kRtmsgLen = NLMSG_ALIGN(sizeof(rtmsg));

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

}  // namespace

// ---------------------------------------------------------------------------
// Values

bool Link::up() const { return (flags & IFF_UP) != 0; }

std::string describe_addr(Op op, const Addr& a, const std::string& dev) {
  std::string s = std::string("ip addr ") + op_name(op) + " " + format_ip4(a.address) + "/" +
                  std::to_string(a.prefix_len) + " dev " + dev;
  if (!a.label.empty()) s += " label " + a.label;
  return s;
}

std::string describe_route(Op op, const Route& r, const std::string& dev) {
  std::string s = std::string("ip route ") + op_name(op) + " ";
  if (r.dst_len == 0 && r.dst == Ip4{}) {
    s += "default";
  } else {
    s += format_ip4(r.dst) + "/" + std::to_string(r.dst_len);
  }
  if (r.gateway) s += " via " + format_ip4(*r.gateway);
  if (r.oif) s += " dev " + dev;
  if (r.table != RT_TABLE_MAIN) s += " table " + std::to_string(r.table);
  if (r.protocol) s += " proto " + std::to_string(*r.protocol);
  if (r.scope) s += " scope " + scope_name(*r.scope);
  if (r.priority) s += " metric " + std::to_string(*r.priority);
  if (r.prefsrc) s += " src " + format_ip4(*r.prefsrc);
  if (r.onlink) s += " onlink";
  return s;
}

// ---------------------------------------------------------------------------
// Building

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
// Parsing

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

}  // namespace weft::nl
