// The rtnetlink message level (core/nl_msg.h) over arbitrary bytes.
//
// Parsers: the whole input is one datagram as recv() would return it.
// MsgIter and parse_messages walk it; every message goes to parse_link,
// parse_addr, parse_route and parse_ack; every attribute span (after each
// family header size, and nested spans a few levels down) goes through
// AttrIter and the Attr readers. Every span handed out must lie inside the
// input, and a parser must give the same answer for a message whether or
// not the rest of the datagram follows it.
//
// Builder: the same bytes, read from the other end (FuzzedDataProvider),
// drive a MsgBuilder over a buffer of an input-chosen capacity with a guard
// behind it, through the primitive appends and the request builders. The
// guard must stay intact, size() within capacity, nlmsg_len current; a
// request that was built must parse back to what was asked for.
#include <fuzzer/FuzzedDataProvider.h>

#include <climits>
#include <string>
#include <vector>

#include "core/nl_msg.h"
#include "fuzz/fuzz_util.h"

namespace nl = weft::nl;

namespace {

const uint8_t* g_begin;
const uint8_t* g_end;

void check_span(const uint8_t* p, size_t len) {
  FUZZ_CHECK(p >= g_begin && p <= g_end && len <= static_cast<size_t>(g_end - p));
}

void check_str(const std::string& s, size_t max) {
  FUZZ_CHECK(s.size() <= max && s.find('\0') == std::string::npos);
}

void walk_attrs(const uint8_t* p, size_t len, int depth) {
  nl::AttrIter it(p, len);
  nl::Attr a;
  size_t n = 0;
  while (it.next(a)) {
    check_span(a.data, a.len);
    FUZZ_CHECK(a.data >= p + 4 && a.data + a.len <= p + len);
    FUZZ_CHECK((a.type & (NLA_F_NESTED | NLA_F_NET_BYTEORDER)) == 0);
    if (auto v = a.u8()) FUZZ_CHECK(a.len == 1);
    if (auto v = a.u16()) FUZZ_CHECK(a.len == 2);
    if (auto v = a.u32()) FUZZ_CHECK(a.len == 4);
    if (auto v = a.ip4()) FUZZ_CHECK(a.len == 4);
    check_str(a.str(), a.len);
    if (depth > 0) walk_attrs(a.data, a.len, depth - 1);
    n++;
  }
  FUZZ_CHECK(n <= len / 4);
}

bool same(const std::optional<nl::Link>& a, const std::optional<nl::Link>& b) {
  if (!a || !b) return !a && !b;
  return a->index == b->index && a->name == b->name && a->mtu == b->mtu && a->flags == b->flags &&
         a->mac == b->mac && a->kind == b->kind;
}
bool same(const std::optional<nl::Addr>& a, const std::optional<nl::Addr>& b) {
  if (!a || !b) return !a && !b;
  return a->ifindex == b->ifindex && a->address == b->address && a->prefix_len == b->prefix_len &&
         a->scope == b->scope && a->label == b->label && a->flags == b->flags;
}
bool same(const std::optional<nl::Route>& a, const std::optional<nl::Route>& b) {
  if (!a || !b) return !a && !b;
  return a->dst == b->dst && a->dst_len == b->dst_len && a->gateway == b->gateway && a->oif == b->oif &&
         a->table == b->table && a->scope == b->scope && a->protocol == b->protocol && a->type == b->type &&
         a->onlink == b->onlink && a->prefsrc == b->prefsrc && a->priority == b->priority;
}

void check_parsed(const std::optional<nl::Link>& l, size_t len) {
  if (!l) return;
  FUZZ_CHECK(l->index > 0);
  check_str(l->name, len);
  check_str(l->kind, len);
}
void check_parsed(const std::optional<nl::Addr>& a, size_t len) {
  if (!a) return;
  FUZZ_CHECK(a->prefix_len <= 32 && a->ifindex >= 0);
  check_str(a->label, len);
}
void check_parsed(const std::optional<nl::Route>& r, size_t) {
  if (!r) return;
  FUZZ_CHECK(r->dst_len <= 32);
  FUZZ_CHECK(r->oif >= 0);  // 0 is "none"; an ifindex is never negative
  FUZZ_CHECK(r->scope && r->protocol);
  for (nl::Op op : {nl::Op::add, nl::Op::replace, nl::Op::del}) FUZZ_CHECK(!nl::describe_route(op, *r, "flannel.1").empty());
}

// One message, parsed alone and with the rest of the datagram behind it.
void parse_one(const nl::Msg& m, size_t rest) {
  auto link = nl::parse_link(m.data, m.len);
  auto addr = nl::parse_addr(m.data, m.len);
  auto route = nl::parse_route(m.data, m.len);
  check_parsed(link, m.len);
  check_parsed(addr, m.len);
  check_parsed(route, m.len);
  FUZZ_CHECK(same(link, nl::parse_link(m.data, rest)));
  FUZZ_CHECK(same(addr, nl::parse_addr(m.data, rest)));
  FUZZ_CHECK(same(route, nl::parse_route(m.data, rest)));
  FUZZ_CHECK(int{link.has_value()} + int{addr.has_value()} + int{route.has_value()} <= 1);

  nl::Ack ack;
  if (nl::parse_ack(m, ack)) {
    FUZZ_CHECK(m.type == NLMSG_ERROR || m.type == NLMSG_DONE);
    FUZZ_CHECK(ack.err >= 0);
    check_str(ack.msg, m.len);
    FUZZ_CHECK(ack.msg.empty() || (ack.msg.back() != '\n' && ack.msg.back() != ' '));
  }

  // Attributes after each family header the kernel uses (and none).
  for (size_t hdr : {size_t{0}, NLMSG_ALIGN(sizeof(ifaddrmsg)), NLMSG_ALIGN(sizeof(rtmsg)),
                     NLMSG_ALIGN(sizeof(ifinfomsg)), NLMSG_ALIGN(sizeof(nlmsgerr))}) {
    if (hdr <= m.payload_len()) walk_attrs(m.payload() + hdr, m.payload_len() - hdr, 2);
  }
}

void fuzz_parsers(const uint8_t* data, size_t size) {
  g_begin = data;
  g_end = data + size;
  std::vector<nl::Msg> msgs;
  bool whole = nl::parse_messages(data, size, msgs);

  nl::MsgIter it(data, size);
  nl::Msg m;
  size_t n = 0, at = 0;
  while (it.next(m)) {
    FUZZ_CHECK(n < msgs.size());
    FUZZ_CHECK(m.data == msgs[n].data && m.len == msgs[n].len && m.type == msgs[n].type);
    FUZZ_CHECK(m.data == data + at);  // each message starts where the last one's padding ends
    FUZZ_CHECK(m.len >= NLMSG_HDRLEN);
    check_span(m.data, m.len);
    parse_one(m, size - at);
    at += std::min((m.len + 3) & ~size_t{3}, size - at);
    n++;
  }
  FUZZ_CHECK(n == msgs.size());
  FUZZ_CHECK(whole == !it.bad());
  FUZZ_CHECK(!whole || at == size);  // a good datagram is all messages

  // A reply the socket layer hands to a parser whole, trailing bytes and all.
  check_parsed(nl::parse_link(data, size), size);
  check_parsed(nl::parse_addr(data, size), size);
  check_parsed(nl::parse_route(data, size), size);
}

// --- the builder -----------------------------------------------------------

weft::Ip4 take_ip4(FuzzedDataProvider& in) {
  weft::Ip4 a;
  for (auto& b : a) b = in.ConsumeIntegral<uint8_t>();
  return a;
}

nl::Route take_route(FuzzedDataProvider& in) {
  nl::Route r;
  r.dst = take_ip4(in);
  r.dst_len = in.ConsumeIntegralInRange<uint8_t>(0, 40);
  if (in.ConsumeBool()) r.gateway = take_ip4(in);
  r.oif = in.ConsumeIntegral<int>();
  r.table = in.ConsumeBool() ? RT_TABLE_MAIN : in.ConsumeIntegral<uint32_t>();
  if (in.ConsumeBool()) r.scope = in.ConsumeIntegral<uint8_t>();
  if (in.ConsumeBool()) r.protocol = in.ConsumeIntegral<uint8_t>();
  r.type = in.ConsumeIntegral<uint8_t>();
  r.onlink = in.ConsumeBool();
  if (in.ConsumeBool()) r.prefsrc = take_ip4(in);
  if (in.ConsumeBool()) r.priority = in.ConsumeIntegral<uint32_t>();
  return r;
}

nl::Addr take_addr(FuzzedDataProvider& in) {
  nl::Addr a;
  a.ifindex = in.ConsumeIntegral<int>();
  a.address = take_ip4(in);
  a.prefix_len = in.ConsumeIntegralInRange<uint8_t>(0, 40);
  a.scope = in.ConsumeIntegral<uint8_t>();
  a.label = in.ConsumeRandomLengthString(24);
  return a;
}

// A built request parses back to what was asked.
void check_route_roundtrip(const nl::MsgBuilder& b, nl::Op op, const nl::Route& want) {
  auto got = nl::parse_route(b.data(), b.size());
  if (want.dst_len > 32 || want.oif < 0) {
    FUZZ_CHECK(!got);
    return;
  }
  FUZZ_CHECK(got);
  FUZZ_CHECK(got->dst_len == want.dst_len && got->gateway == want.gateway && got->oif == want.oif);
  if (want.dst_len > 0) FUZZ_CHECK(got->dst == want.dst);
  FUZZ_CHECK(got->table == want.table && got->type == want.type && got->onlink == want.onlink);
  FUZZ_CHECK(got->prefsrc == want.prefsrc && got->priority == want.priority);
  if (want.scope) FUZZ_CHECK(got->scope == want.scope);
  if (want.protocol) FUZZ_CHECK(got->protocol == want.protocol);
  (void)op;
}

void check_addr_roundtrip(const nl::MsgBuilder& b, const nl::Addr& want) {
  auto got = nl::parse_addr(b.data(), b.size());
  if (want.prefix_len > 32 || want.ifindex < 0) {
    FUZZ_CHECK(!got);
    return;
  }
  FUZZ_CHECK(got);
  FUZZ_CHECK(got->ifindex == want.ifindex && got->address == want.address);
  FUZZ_CHECK(got->prefix_len == want.prefix_len && got->scope == want.scope);
  FUZZ_CHECK(got->label == want.label.substr(0, want.label.find('\0')));
  FUZZ_CHECK(got->flags == 0);  // a request carries no flags
}

void fuzz_builder(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  fuzz::Guarded buf(in.ConsumeIntegralInRange<size_t>(0, 600));
  nl::MsgBuilder b(buf.data(), buf.cap());
  std::vector<size_t> nests;
  for (int step = 0; step < 48 && in.remaining_bytes() > 0; step++) {
    // Builds a whole request; on success it must parse back.
    bool request = false;
    switch (in.ConsumeIntegralInRange<int>(0, 22)) {
      case 0: b.begin(in.ConsumeIntegral<uint16_t>(), in.ConsumeIntegral<uint16_t>()); nests.clear(); break;
      case 1: {
        std::vector<uint8_t> h = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 40));
        b.header(h.data(), h.size());
        break;
      }
      case 2: {
        std::vector<uint8_t> v = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 700));
        b.attr(in.ConsumeIntegral<uint16_t>(), v.data(), v.size());
        break;
      }
      case 3: b.attr_u8(in.ConsumeIntegral<uint16_t>(), in.ConsumeIntegral<uint8_t>()); break;
      case 4: b.attr_u16(in.ConsumeIntegral<uint16_t>(), in.ConsumeIntegral<uint16_t>()); break;
      case 5: b.attr_u32(in.ConsumeIntegral<uint16_t>(), in.ConsumeIntegral<uint32_t>()); break;
      case 6: b.attr_ip4(in.ConsumeIntegral<uint16_t>(), take_ip4(in)); break;
      case 7: b.attr_str(in.ConsumeIntegral<uint16_t>(), in.ConsumeRandomLengthString(64)); break;
      case 8: {
        size_t off = b.nest_begin(in.ConsumeIntegral<uint16_t>());
        if (off) nests.push_back(off);
        break;
      }
      case 9:
        if (!nests.empty() && in.ConsumeBool()) {
          b.nest_end(nests.back());
          nests.pop_back();
        } else {
          b.nest_end(in.ConsumeIntegral<size_t>() % 700);
        }
        break;
      case 10: b.set_seq(in.ConsumeIntegral<uint32_t>()); break;
      case 11: b.set_pid(in.ConsumeIntegral<uint32_t>()); break;
      case 12: b.add_flags(in.ConsumeIntegral<uint16_t>()); break;
      case 13: {
        std::string name = in.ConsumeRandomLengthString(20);
        request = nl::build_link_get(b, in.ConsumeIntegral<int>(), name);
        break;
      }
      case 14: request = nl::build_link_dump(b); break;
      case 15: request = nl::build_link_set_up(b, in.ConsumeIntegral<int>(), in.ConsumeBool()); break;
      case 16: request = nl::build_link_set_mtu(b, in.ConsumeIntegral<int>(), in.ConsumeIntegral<uint32_t>()); break;
      case 17: {
        nl::Addr a = take_addr(in);
        nl::Op op = in.PickValueInArray({nl::Op::add, nl::Op::replace, nl::Op::del});
        if (nl::build_addr(b, op, a)) check_addr_roundtrip(b, a);
        request = b.ok();
        break;
      }
      case 18: request = nl::build_addr_dump(b); break;
      case 19: {
        nl::Route r = take_route(in);
        nl::Op op = in.PickValueInArray({nl::Op::add, nl::Op::replace, nl::Op::del});
        if (nl::build_route(b, op, r)) check_route_roundtrip(b, op, r);
        request = b.ok();
        break;
      }
      case 20: request = nl::build_route_dump(b); break;
      case 21: request = nl::build_route_get(b, take_ip4(in)); break;
      default: {
        // What a caller of Socket::request would see if it parsed its own request.
        std::vector<nl::Msg> msgs;
        if (b.ok()) FUZZ_CHECK(nl::parse_messages(b.data(), b.size(), msgs) && msgs.size() == 1);
        break;
      }
    }
    FUZZ_CHECK(buf.intact());
    FUZZ_CHECK(b.size() <= buf.cap());
    if (b.ok()) {
      uint32_t len;
      std::memcpy(&len, b.data(), 4);
      FUZZ_CHECK(len == b.size() && b.size() >= NLMSG_HDRLEN && b.size() % 4 == 0);
    }
    if (request) {
      std::vector<nl::Msg> msgs;
      FUZZ_CHECK(nl::parse_messages(b.data(), b.size(), msgs) && msgs.size() == 1 && msgs[0].len == b.size());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_parsers(data, size);
  fuzz_builder(data, size);
  return 0;
}
