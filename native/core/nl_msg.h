// rtnetlink messages: the values (links, IPv4 addresses, routes), building
// requests and parsing replies. The lower of netlink's two levels, as libmnl's
// nlmsg.c/attr.c and vishvananda/netlink's nl/ package are: everything here
// works in caller-owned buffers and never touches a socket, so the parsers
// (`parse_*`, `AttrIter`, `MsgIter`) can be fed arbitrary bytes by a unit test
// or a fuzzer. Every length the kernel (or an attacker) supplies is checked
// against the bytes actually there before it is read, and all reads go
// through memcpy because a caller's buffer (a Node Buffer) need not be
// aligned.
//
// We wrote this instead of linking libmnl or libnl: the control layer needs a
// dozen verbs, and owning the bytes keeps the parsers fuzzable and the error
// text in our hands. nl_socket.h sends what is built here; rtnl.h has the
// verbs.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/addr.h"

namespace weft::nl {

// ---------------------------------------------------------------------------
// Values

struct Link {
  int index = 0;
  std::string name;
  uint32_t mtu = 0;
  uint32_t flags = 0;       // IFF_* (ifi_flags)
  std::optional<Mac> mac;   // IFLA_ADDRESS when it is 6 bytes (not on TUN)
  std::string kind;         // IFLA_INFO_KIND ("veth", "vxlan"), "" if none
  bool up() const;
};

struct Addr {
  int ifindex = 0;
  Ip4 address{};            // IFA_LOCAL (IFA_ADDRESS if there is no local)
  uint8_t prefix_len = 32;
  uint8_t scope = RT_SCOPE_UNIVERSE;
  std::string label;        // IFA_LABEL, "" for none
  // IFA_F_* (PERMANENT, DEPRECATED, SECONDARY/TEMPORARY, ...): the IFA_FLAGS
  // attribute when the kernel sends it (it carries the bits above 8), else
  // ifa_flags. Read only: build_addr sends none, as `ip addr add` does.
  uint32_t flags = 0;
};

struct Route {
  Ip4 dst{};
  uint8_t dst_len = 0;
  std::optional<Ip4> gateway;
  int oif = 0;                          // 0: none
  uint32_t table = RT_TABLE_MAIN;
  // Unset on a request means what `ip route` means: scope link for a route
  // without a gateway, universe with one, and "any" for a delete; protocol
  // boot, and "any" for a delete. A parsed route always has both.
  std::optional<uint8_t> scope;
  std::optional<uint8_t> protocol;
  uint8_t type = RTN_UNICAST;
  bool onlink = false;                  // RTNH_F_ONLINK
  std::optional<Ip4> prefsrc;
  std::optional<uint32_t> priority;     // the metric
};

enum class Op { add, replace, del };

// The `ip` command that would fail the same way, the text of every address
// and route error: "ip route replace 10.244.3.0/24 via 10.0.0.2 dev flannel.1
// onlink". `dev` is what follows "dev" (the link's name); it is not looked up
// here, as this level has no socket.
std::string describe_addr(Op op, const Addr& a, const std::string& dev);
std::string describe_route(Op op, const Route& r, const std::string& dev);

// ---------------------------------------------------------------------------
// Building

// Big enough for any request we build (the largest, a route, is ~100 bytes).
constexpr size_t kRequestCap = 512;

// Writes one message (nlmsghdr, family header, attributes) into a buffer the
// caller owns. Nothing is ever written past `cap`: the first append that does
// not fit fails, returns false and leaves the builder failed (`ok()` false)
// so a caller may do a run of appends and check once. nlmsg_len is kept
// current after every append.
class MsgBuilder {
 public:
  MsgBuilder(uint8_t* buf, size_t cap);

  // Starts over with a fresh nlmsghdr (seq and pid 0).
  bool begin(uint16_t type, uint16_t flags);
  // The family header (ifinfomsg, ifaddrmsg, rtmsg), padded to 4.
  bool header(const void* data, size_t len);
  bool attr(uint16_t type, const void* data, size_t len);
  bool attr_u8(uint16_t type, uint8_t v);
  bool attr_u16(uint16_t type, uint16_t v);
  bool attr_u32(uint16_t type, uint32_t v);
  bool attr_ip4(uint16_t type, const Ip4& a);
  // With its NUL, as the kernel's NLA_STRING / NLA_NUL_STRING expect.
  bool attr_str(uint16_t type, const std::string& s);
  // Opens a nested attribute (NLA_F_NESTED set); returns its offset for
  // nest_end, or 0 (never a valid offset) when it does not fit.
  size_t nest_begin(uint16_t type);
  bool nest_end(size_t offset);

  void set_seq(uint32_t seq);
  void set_pid(uint32_t pid);
  void add_flags(uint16_t flags);

  bool ok() const { return ok_; }
  const uint8_t* data() const { return buf_; }
  size_t size() const { return len_; }

 private:
  bool reserve(size_t n, uint8_t** at);
  void sync_len();

  uint8_t* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool ok_ = false;  // until begin()
};

// The request messages, built into `b` (seq/pid 0). false: did not fit.
// A route or address is not checked for sense here; the kernel does that and
// says why in its extended ack.
bool build_link_get(MsgBuilder& b, int ifindex, const std::string& name);
bool build_link_dump(MsgBuilder& b);
bool build_link_set_up(MsgBuilder& b, int ifindex, bool up);
bool build_link_set_mtu(MsgBuilder& b, int ifindex, uint32_t mtu);
bool build_addr(MsgBuilder& b, Op op, const Addr& a);
bool build_addr_dump(MsgBuilder& b);
bool build_route(MsgBuilder& b, Op op, const Route& r);
bool build_route_dump(MsgBuilder& b);
bool build_route_get(MsgBuilder& b, const Ip4& dst);

// ---------------------------------------------------------------------------
// Parsing

struct Msg {
  uint16_t type = 0;
  uint16_t flags = 0;
  uint32_t seq = 0;
  uint32_t pid = 0;
  const uint8_t* data = nullptr;     // the whole message, header included
  size_t len = 0;                    // == nlmsg_len
  const uint8_t* payload() const { return data + NLMSG_HDRLEN; }
  size_t payload_len() const { return len - NLMSG_HDRLEN; }
};

// Walks the messages of one datagram. Stops at the first header whose
// nlmsg_len is under 16 or runs past the buffer, and then `bad()` is true.
class MsgIter {
 public:
  MsgIter(const uint8_t* buf, size_t len) : p_(buf), left_(len) {}
  bool next(Msg& m);
  bool bad() const { return bad_; }

 private:
  const uint8_t* p_;
  size_t left_;
  bool bad_ = false;
};

// All messages of a buffer, or false if any header is malformed (then `out`
// holds the well-formed ones before it).
bool parse_messages(const uint8_t* buf, size_t len, std::vector<Msg>& out);

struct Attr {
  uint16_t type = 0;                 // NLA_F_NESTED / NET_BYTEORDER removed
  bool nested = false;
  const uint8_t* data = nullptr;
  size_t len = 0;                    // payload, nla_len - 4

  // Fixed-size readers: nullopt unless the payload has exactly that size.
  std::optional<uint8_t> u8() const;
  std::optional<uint16_t> u16() const;
  std::optional<uint32_t> u32() const;
  std::optional<Ip4> ip4() const;
  // Up to the first NUL (or the whole payload if it has none).
  std::string str() const;
};

// Walks the attributes of a span. Every nla_len must be >= 4 and fit in what
// is left; each attribute starts 4-aligned from the start of the span; the
// last one may lack its padding. Anything else (including 1 to 3 stray bytes
// at the end) stops the walk with `bad()` true.
class AttrIter {
 public:
  AttrIter(const uint8_t* buf, size_t len) : p_(buf), left_(len) {}
  bool next(Attr& a);
  bool bad() const { return bad_; }

 private:
  const uint8_t* p_;
  size_t left_;
  bool bad_ = false;
};

// One whole message (nlmsghdr first) of the matching kind: RTM_NEWLINK or
// RTM_DELLINK for parse_link, and so on. nullopt for another type, another
// family than AF_INET (addr, route), or any malformed length or attribute.
std::optional<Link> parse_link(const uint8_t* msg, size_t len);
std::optional<Addr> parse_addr(const uint8_t* msg, size_t len);
std::optional<Route> parse_route(const uint8_t* msg, size_t len);

// The errno (positive) and extended-ack text of an NLMSG_ERROR or the
// NLMSG_DONE that ends a dump; false if it is too short to hold one.
struct Ack {
  int err = 0;
  std::string msg;
};
bool parse_ack(const Msg& m, Ack& out);

}  // namespace weft::nl
