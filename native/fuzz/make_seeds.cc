// Writes the seed corpora in native/fuzz/corpus/: a few valid inputs of
// each kind for each target, in that target's input layout (see the comment
// at the top of each fuzz_*.cc). Run by `scripts/fuzz.sh seeds`; the output
// is checked in, so the corpora do not depend on this machine's kernel.
//
// Packets are built here by hand with their own checksum code; netlink
// messages with the core's MsgBuilder (the builder is fuzzed on its own).
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/encap.h"
#include "core/nl_msg.h"
#include "core/offload.h"
#include "fuzz/fuzz_util.h"

namespace {

using Bytes = std::vector<uint8_t>;

std::string g_root;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

void write(const std::string& target, const std::string& name, const Bytes& b) {
  std::string dir = g_root + "/" + target;
  mkdir(g_root.c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(b.data(), 1, b.size(), f) != b.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

struct Ip {
  uint8_t proto = 1;
  uint32_t src = 0x0af40100;  // 10.244.1.0
  uint32_t dst = 0x0af40203;  // 10.244.2.3
  uint8_t ttl = 64;
  uint16_t id = 0x1234;
  Bytes options;  // a multiple of 4
};

// IPv4 header + l4 bytes, with the IPv4 checksum and (for TCP/UDP) the l4
// checksum filled in; `partial` leaves the l4 field holding the
// pseudo-header sum, as a NEEDS_CSUM packet from the TUN has it.
Bytes ipv4(const Ip& ip, const Bytes& l4, bool partial = false) {
  size_t ihl = 20 + ip.options.size();
  Bytes b(ihl);
  b[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
  put16(b, 2, static_cast<uint16_t>(ihl + l4.size()));
  put16(b, 4, ip.id);
  b[6] = 0x40;  // DF
  b[8] = ip.ttl;
  b[9] = ip.proto;
  put32(b, 12, ip.src);
  put32(b, 16, ip.dst);
  std::copy(ip.options.begin(), ip.options.end(), b.begin() + 20);
  put16(b, 10, static_cast<uint16_t>(~fuzz::ones_fold(fuzz::ones_sum(b.data(), ihl))));
  append(b, l4);
  size_t field = ip.proto == 6 ? 16 : ip.proto == 17 ? 6 : 0;
  if (field) {
    uint32_t pseudo = fuzz::ones_sum(b.data() + 12, 8) + ip.proto + static_cast<uint32_t>(l4.size());
    put16(b, ihl + field, 0);
    uint16_t c = partial ? fuzz::ones_fold(pseudo)
                         : static_cast<uint16_t>(~fuzz::ones_fold(fuzz::ones_sum(b.data() + ihl, l4.size(), pseudo)));
    if (!partial && ip.proto == 17 && c == 0) c = 0xffff;
    put16(b, ihl + field, c);
  }
  return b;
}

Bytes icmp_echo(uint16_t seq, size_t n) {
  Bytes b(8);
  b[0] = 8;
  put16(b, 4, 0x77);
  put16(b, 6, seq);
  append(b, pattern(n, static_cast<uint8_t>(seq)));
  put16(b, 2, static_cast<uint16_t>(~fuzz::ones_fold(fuzz::ones_sum(b.data(), b.size()))));
  return b;
}

constexpr uint8_t kAck = 0x10, kPsh = 0x08, kSyn = 0x02, kFin = 0x01, kCwr = 0x80, kEce = 0x40;
const Bytes kTsOpts = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, const Bytes& payload, const Bytes& opts = {}) {
  Bytes b(20 + opts.size());
  put16(b, 0, sport);
  put16(b, 2, dport);
  put32(b, 4, seq);
  put32(b, 8, 0x01020304);
  b[12] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4);
  b[13] = flags;
  put16(b, 14, 502);
  std::copy(opts.begin(), opts.end(), b.begin() + 20);
  append(b, payload);
  return b;
}

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b(8);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put16(b, 4, static_cast<uint16_t>(8 + payload.size()));
  append(b, payload);
  return b;
}

Ip proto(uint8_t p) {
  Ip ip;
  ip.proto = p;
  return ip;
}

const weft::Mac kLocalMac = {0x0e, 0x11, 0x22, 0x33, 0x44, 0x55};
const weft::Mac kPeerMac = {0x0e, 0x66, 0x77, 0x88, 0x99, 0xaa};

// --- decap ---------------------------------------------------------------

constexpr uint32_t kPeerIp = 0xc0a84d01;   // 192.168.77.1, holds 10.244.1.0/24 (the seeds' sources)
constexpr uint32_t kOtherIp = 0xc0a84d09;  // 192.168.77.9, holds the rest of 10.244.0.0/16

// Our subnet is 10.244.2.0/24, where the seeds' packets go.
Bytes decap_prefix(uint32_t vni, uint16_t max_inner, bool strict = false, uint32_t outer_src = kPeerIp) {
  Bytes b(39);
  b[0] = static_cast<uint8_t>(vni >> 16);
  b[1] = static_cast<uint8_t>(vni >> 8);
  b[2] = static_cast<uint8_t>(vni);
  std::copy(kLocalMac.begin(), kLocalMac.end(), b.begin() + 3);
  put16(b, 9, max_inner);
  put32(b, 11, 0x0af40200);
  b[15] = 24;
  b[16] = strict ? 1 : 0;
  put32(b, 17, outer_src);
  put32(b, 21, 0x0af40100);
  b[25] = 24;
  put32(b, 26, kPeerIp);
  put32(b, 30, 0x0af40000);
  b[34] = 16;
  put32(b, 35, kOtherIp);
  return b;
}

Bytes vxlan(uint32_t vni, const Bytes& inner) {
  Bytes b = {0x08, 0, 0, 0, static_cast<uint8_t>(vni >> 16), static_cast<uint8_t>(vni >> 8), static_cast<uint8_t>(vni), 0};
  b.insert(b.end(), kLocalMac.begin(), kLocalMac.end());
  b.insert(b.end(), kPeerMac.begin(), kPeerMac.end());
  b.push_back(0x08);
  b.push_back(0x00);
  append(b, inner);
  return b;
}

std::vector<std::pair<std::string, Bytes>> inner_packets() {
  Ip opts = proto(1);
  opts.options = {0x94, 0x04, 0, 0};  // router alert
  Bytes padded = ipv4(proto(1), icmp_echo(2, 0));
  padded.resize(46);  // a minimum Ethernet frame's padding after the packet
  return {
      {"icmp", ipv4(proto(1), icmp_echo(1, 56))},
      {"tcp-syn", ipv4(proto(6), tcp(40000, 5201, 1, kSyn, {}, {2, 4, 5, 0xb4, 1, 1, 4, 2}))},
      {"udp", ipv4(proto(17), udp(5353, 53, pattern(100, 3)))},
      {"icmp-padded", padded},
      {"ip-options", ipv4(opts, icmp_echo(3, 8))},
  };
}

void decap_seeds() {
  for (auto& [name, pkt] : inner_packets()) {
    Bytes v = decap_prefix(1, 1450);
    append(v, vxlan(1, pkt));
    write("fuzz_decap_vxlan", name, v);
    Bytes u = decap_prefix(1, 1472);
    append(u, pkt);
    write("fuzz_decap_udp", name, u);
  }
  Bytes big = decap_prefix(0xabcdef, 9000);
  append(big, vxlan(0xabcdef, ipv4(proto(6), tcp(5201, 40000, 7, kAck, pattern(1400, 9), kTsOpts))));
  write("fuzz_decap_vxlan", "tcp-vni-abcdef", big);

  // What a kernel vxlan peer on a veth sends: partial checksums, and TCP
  // super-packets larger than the TUN MTU.
  Bytes b = decap_prefix(1, 1450);
  append(b, vxlan(1, ipv4(proto(6), tcp(40000, 5201, 9, kAck, pattern(1000, 4), kTsOpts), true)));
  write("fuzz_decap_vxlan", "tcp-partial", b);
  b = decap_prefix(1, 1472);
  append(b, ipv4(proto(17), udp(4000, 53, pattern(200, 5)), true));
  write("fuzz_decap_udp", "udp-partial", b);
  b = decap_prefix(1, 1450);
  append(b, vxlan(1, ipv4(proto(6), tcp(40000, 5201, 11, kAck | kPsh, pattern(2900, 6), kTsOpts), true)));
  write("fuzz_decap_vxlan", "tcp-super-partial", b);
  b = decap_prefix(1, 1472);
  append(b, ipv4(proto(6), tcp(40000, 5201, 13, kAck, pattern(4000, 7))));
  write("fuzz_decap_udp", "tcp-super", b);

  // Inner addresses the receiver must refuse: a destination outside our
  // subnet, our subnet's broadcast address; with strict source, a source
  // from another peer's subnet.
  Ip outside = proto(1);
  outside.dst = 0xc0a84d01;
  b = decap_prefix(1, 1450);
  append(b, vxlan(1, ipv4(outside, icmp_echo(4, 8))));
  write("fuzz_decap_vxlan", "dst-outside", b);
  Ip bcast = proto(17);
  bcast.dst = 0x0af402ff;
  b = decap_prefix(1, 1472);
  append(b, ipv4(bcast, udp(1, 2, pattern(10, 8))));
  write("fuzz_decap_udp", "dst-broadcast", b);
  Ip spoof = proto(1);
  spoof.src = 0x0af40302;  // 10.244.3.2: the other peer's, not the sender's
  b = decap_prefix(1, 1450, true);
  append(b, vxlan(1, ipv4(spoof, icmp_echo(5, 8))));
  write("fuzz_decap_vxlan", "strict-spoofed-src", b);
  b = decap_prefix(1, 1472, true);
  append(b, ipv4(proto(1), icmp_echo(6, 8)));
  write("fuzz_decap_udp", "strict-good-src", b);
}

// --- gso_segment -----------------------------------------------------------

Bytes gso_prefix(uint8_t gso_type, uint16_t gso_size, uint16_t hdr_len, uint32_t out_cap, uint8_t lead, bool headers_only = false) {
  weft::VnetHdr h;
  h.flags = weft::kVnetFlagNeedsCsum;
  h.gso_type = gso_type;
  h.gso_size = gso_size;
  h.hdr_len = hdr_len;
  h.csum_start = 20;
  h.csum_offset = (gso_type & 0x7f) == weft::kGsoUdpL4 ? 6 : 16;
  Bytes b(13);
  weft::write_vnet_hdr(b.data(), h);
  put16(b, 10, static_cast<uint16_t>(out_cap));
  b[12] = static_cast<uint8_t>((headers_only ? 0x80 : 0) | (lead << 1) | ((out_cap >> 16) & 1));
  return b;
}

void gso_seeds() {
  Bytes b = gso_prefix(weft::kGsoTcpV4, 500, 52, 98304, 22);
  append(b, ipv4(proto(6), tcp(40000, 5201, 0xfffffe00, kAck | kPsh, pattern(1500, 1), kTsOpts), true));
  write("fuzz_gso_segment", "tso-vxlan", b);

  b = gso_prefix(weft::kGsoTcpV4 | weft::kGsoEcn, 400, 40, 4096, 0);
  append(b, ipv4(proto(6), tcp(1, 2, 100, kAck | kPsh | kFin | kCwr | kEce, pattern(1001, 2)), true));
  write("fuzz_gso_segment", "tso-ecn-fin-udpformat", b);

  b = gso_prefix(weft::kGsoUdpL4, 300, 28, 2000, 22);
  append(b, ipv4(proto(17), udp(4000, 4001, pattern(1000, 3)), true));
  write("fuzz_gso_segment", "uso", b);

  // An out buffer exactly as large as the three segments need.
  Ip opts = proto(6);
  opts.options = {1, 1, 1, 0};
  Bytes pkt = ipv4(opts, tcp(7, 8, 1, kAck, pattern(700, 4)), true);
  b = gso_prefix(weft::kGsoTcpV4, 256, 44, 2 * (22 + 44 + 256) + 22 + 44 + 188, 22);
  append(b, pkt);
  write("fuzz_gso_segment", "tso-ip-options-tight", b);

  b = gso_prefix(weft::kGsoTcpV4, 1448, 40, 1600, 22);
  append(b, ipv4(proto(6), tcp(7, 8, 1, kAck, pattern(100, 5)), true));
  write("fuzz_gso_segment", "tso-one-segment", b);

  // The engine's zero-copy shape: header blocks only, payloads left in place.
  b = gso_prefix(weft::kGsoTcpV4, 500, 52, 4096, 22, true);
  append(b, ipv4(proto(6), tcp(40000, 5201, 0xfffffe00, kAck | kPsh, pattern(1501, 6), kTsOpts), true));
  write("fuzz_gso_segment", "headers-tso-vxlan", b);

  b = gso_prefix(weft::kGsoUdpL4, 300, 28, 3 * (22 + 28), 22, true);
  append(b, ipv4(proto(17), udp(4000, 4001, pattern(700, 7)), true));
  write("fuzz_gso_segment", "headers-uso-tight", b);
}

// --- fib -------------------------------------------------------------------

void fib_seeds() {
  // Replace with three entries (a /16 over two /24s), then change one, hold a reader, remove one.
  write("fuzz_fib", "replace-update-hold",
        {0x00, 3, 0x20, 1, 0x21, 2, 0x00 | 0x10, 3, 0x03, (1 << 3) | 1, 0x21, 4, 0x20, 0});
  // Every length, including /40, which is skipped.
  write("fuzz_fib", "lengths", {0x00, 4, 0x05, 1, 0x25, 2, 0x45, 3, 0x65, 4, 0x01, 2, 0x05, 5, 0x01, 8, 0x25, 0});
}

// --- coalesce --------------------------------------------------------------

constexpr uint8_t kRaw = 0, kNext = 1, kAgain = 2, kPshBit = 4, kGap = 8, kCorrupt = 0x10, kPartial = 0x20,
                  kEnd = 0x80;

void rec(Bytes& b, uint8_t op, const Bytes& data, uint16_t n) {
  b.push_back(op);
  b.push_back(static_cast<uint8_t>(n >> 8));
  b.push_back(static_cast<uint8_t>(n));
  append(b, data);
}
void raw(Bytes& b, const Bytes& pkt, uint8_t flags = 0) { rec(b, kRaw | flags, pkt, static_cast<uint16_t>(pkt.size())); }
void next(Bytes& b, uint16_t n, uint8_t flags = 0) { rec(b, kNext | flags, {}, n); }

Bytes seg(uint16_t sport, uint32_t seq, size_t n, uint8_t flags = kAck, const Bytes& opts = {}) {
  return ipv4(proto(6), tcp(sport, 80, seq, flags, pattern(n, static_cast<uint8_t>(seq)), opts));
}

void coalesce_seeds() {
  Bytes b;  // one flow: four full segments and a short one
  raw(b, seg(1000, 1, 100));
  for (int i = 0; i < 3; i++) next(b, 100);
  next(b, 50);
  write("fuzz_coalesce", "one-flow", b);

  b.clear();  // two interleaved flows, timestamps, PSH on the last
  uint32_t a = 1, c = 0xfffffff0;
  for (int i = 0; i < 4; i++) {
    raw(b, seg(1000, a, 120, i == 3 ? kAck | kPsh : kAck, kTsOpts));
    raw(b, seg(2000, c, 64));
    a += 120;
    c += 64;
  }
  write("fuzz_coalesce", "two-flows", b);

  b.clear();  // a gap, a duplicate, a non-TCP packet in between, two batches
  raw(b, seg(1000, 1, 200));
  next(b, 200);
  next(b, 200, kGap);
  rec(b, kAgain, {}, 0);
  raw(b, ipv4(proto(17), udp(53, 53, pattern(30, 1))));
  next(b, 200, kPshBit | kEnd);
  raw(b, seg(1000, 1000, 200));
  next(b, 200);
  write("fuzz_coalesce", "gap-dup-batches", b);

  b.clear();  // more flows than the coalescer keeps open
  for (uint16_t f = 0; f < 18; f++) raw(b, seg(static_cast<uint16_t>(3000 + f), 1, 8));
  for (uint16_t f = 0; f < 18; f++) raw(b, seg(static_cast<uint16_t>(3000 + f), 9, 8));
  write("fuzz_coalesce", "many-flows", b);

  b.clear();  // a run that hits the 64-segment limit
  raw(b, seg(1000, 1, 16));
  for (int i = 0; i < 70; i++) next(b, 16);
  write("fuzz_coalesce", "segment-limit", b);

  b.clear();  // a run that hits the 64 KB limit
  raw(b, seg(1000, 1, 1400));
  for (int i = 0; i < 50; i++) next(b, 1400);
  write("fuzz_coalesce", "size-limit", b);

  b.clear();  // a segment corrupted on the way, in the middle of a run
  raw(b, seg(1000, 1, 300));
  next(b, 300);
  next(b, 300, kCorrupt);
  next(b, 300);
  next(b, 300);
  write("fuzz_coalesce", "corrupt-segment", b);

  b.clear();  // a kernel peer's segments: partial checksums, and a super-packet
  raw(b, seg(1000, 1, 1000));
  next(b, 1000, kPartial);
  next(b, 1000, kPartial);
  next(b, 5000, kPartial);
  next(b, 1000, kPartial | kCorrupt);
  raw(b, ipv4(proto(17), udp(53, 53, pattern(40, 2)), true));
  write("fuzz_coalesce", "partial-and-super", b);
}

// --- encap -----------------------------------------------------------------

Bytes encap_prefix(bool vxlan, uint8_t extra_headroom, bool needs_csum, uint16_t csum_start, uint16_t csum_offset,
                   uint32_t bind_ip = kPeerIp, uint16_t port = 8472) {
  Bytes b(26);
  put32(b, 20, bind_ip);
  put16(b, 24, port);
  b[0] = static_cast<uint8_t>((vxlan ? 1 : 0) | (extra_headroom << 1) | (needs_csum ? 0x10 : 0));
  b[1] = 0;
  b[2] = 0;
  b[3] = 1;
  std::copy(kLocalMac.begin(), kLocalMac.end(), b.begin() + 4);
  std::copy(kPeerMac.begin(), kPeerMac.end(), b.begin() + 10);
  put16(b, 16, csum_start);
  put16(b, 18, csum_offset);
  return b;
}

void encap_seeds() {
  Bytes b = encap_prefix(true, 0, true, 20, 16);
  append(b, ipv4(proto(6), tcp(40000, 5201, 1, kAck, pattern(300, 1)), true));
  write("fuzz_encap", "vxlan-tcp-needs-csum", b);

  b = encap_prefix(false, 3, true, 20, 6);
  append(b, ipv4(proto(17), udp(1, 2, pattern(77, 2)), true));
  write("fuzz_encap", "udp-udp-needs-csum", b);

  Ip last_hop = proto(1);
  last_hop.ttl = 1;
  b = encap_prefix(false, 0, false, 0, 0);
  append(b, ipv4(last_hop, icmp_echo(1, 16)));
  write("fuzz_encap", "udp-ttl-1", b);

  Ip opts = proto(1);
  opts.options = {0x94, 0x04, 0, 0};
  b = encap_prefix(true, 7, false, 0, 0);
  append(b, ipv4(opts, icmp_echo(2, 40)));
  write("fuzz_encap", "vxlan-ip-options", b);

  // One of our own datagrams, back in the TUN (a peer's public IP routed
  // into the overlay), and one from another port.
  Ip own = proto(17);
  own.src = kPeerIp;
  own.dst = 0x0af4c801;
  Bytes dgram = udp(8472, 8472, pattern(60, 3));
  b = encap_prefix(true, 0, false, 0, 0);
  append(b, ipv4(own, dgram));
  write("fuzz_encap", "own-datagram", b);
  dgram[1] = 0x35;
  b = encap_prefix(false, 0, false, 0, 0, 0);
  append(b, ipv4(own, dgram));
  write("fuzz_encap", "other-port-any-bind", b);
}

// --- netlink ---------------------------------------------------------------

namespace nl = weft::nl;

Bytes built(const nl::MsgBuilder& b) { return Bytes(b.data(), b.data() + b.size()); }

Bytes link_msg(int index, const std::string& name, const std::string& kind) {
  uint8_t buf[512];
  nl::MsgBuilder b(buf, sizeof buf);
  b.begin(RTM_NEWLINK, NLM_F_MULTI);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  ifi.ifi_flags = 0x1043;  // UP BROADCAST RUNNING MULTICAST
  b.header(&ifi, sizeof ifi);
  b.attr_str(IFLA_IFNAME, name);
  b.attr_u32(IFLA_MTU, 1450);
  b.attr(IFLA_ADDRESS, kLocalMac.data(), 6);
  size_t info = b.nest_begin(IFLA_LINKINFO);
  b.attr_str(IFLA_INFO_KIND, kind);
  b.nest_end(info);
  return built(b);
}

Bytes addr_msg() {
  uint8_t buf[512];
  nl::MsgBuilder b(buf, sizeof buf);
  nl::Addr a;
  a.ifindex = 2;
  a.address = {10, 0, 0, 5};
  a.prefix_len = 24;
  a.label = "eth0";
  nl::build_addr(b, nl::Op::add, a);
  Bytes m = built(b);
  m[4] = RTM_NEWADDR;  // a reply's type and flags, not a request's
  m[6] = NLM_F_MULTI;
  m[7] = 0;
  return m;
}

// A DHCP-style address as the kernel reports it: ifa_flags holds the low
// 8 bits (deprecated), IFA_FLAGS all of them (also NOPREFIXROUTE, 0x200).
Bytes addr_flags_msg() {
  uint8_t buf[512];
  nl::MsgBuilder b(buf, sizeof buf);
  b.begin(RTM_NEWADDR, NLM_F_MULTI);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = 24;
  ifa.ifa_flags = IFA_F_DEPRECATED;
  ifa.ifa_index = 2;
  b.header(&ifa, sizeof ifa);
  b.attr_ip4(IFA_LOCAL, {192, 168, 1, 20});
  b.attr_ip4(IFA_ADDRESS, {192, 168, 1, 20});
  b.attr_u32(IFA_FLAGS, IFA_F_DEPRECATED | IFA_F_NOPREFIXROUTE);
  b.attr_str(IFA_LABEL, "eth0");
  return built(b);
}

Bytes route_msg(bool multipath) {
  uint8_t buf[512];
  nl::MsgBuilder b(buf, sizeof buf);
  nl::Route r;
  r.dst = {10, 244, 3, 0};
  r.dst_len = 24;
  r.table = multipath ? 1000 : RT_TABLE_MAIN;
  r.protocol = RTPROT_BOOT;
  r.scope = RT_SCOPE_UNIVERSE;
  r.prefsrc = weft::Ip4{10, 244, 1, 0};
  r.priority = 100;
  if (!multipath) {
    r.gateway = weft::Ip4{10, 244, 3, 0};
    r.oif = 7;
    r.onlink = true;
  }
  nl::build_route(b, nl::Op::replace, r);
  if (multipath) {
    // RTA_MULTIPATH: two rtnexthop, each with its RTA_GATEWAY.
    uint8_t hops[2 * (8 + 8)] = {};
    for (int i = 0; i < 2; i++) {
      rtnexthop nh{};
      nh.rtnh_len = 16;
      nh.rtnh_ifindex = 3 + i;
      std::memcpy(hops + 16 * i, &nh, sizeof nh);
      uint16_t alen = 8, atype = RTA_GATEWAY;
      std::memcpy(hops + 16 * i + 8, &alen, 2);
      std::memcpy(hops + 16 * i + 10, &atype, 2);
      uint8_t gw[4] = {10, 0, 0, static_cast<uint8_t>(1 + i)};
      std::memcpy(hops + 16 * i + 12, gw, 4);
    }
    b.attr(RTA_MULTIPATH, hops, sizeof hops);
  }
  return built(b);
}

Bytes error_msg(bool capped) {
  uint8_t req_buf[128];
  nl::MsgBuilder req(req_buf, sizeof req_buf);
  nl::Route r;
  r.dst = {10, 244, 3, 0};
  r.dst_len = 24;
  r.oif = 7;
  nl::build_route(req, nl::Op::add, r);
  req.set_seq(42);

  uint8_t buf[512];
  nl::MsgBuilder b(buf, sizeof buf);
  b.begin(NLMSG_ERROR, NLM_F_ACK_TLVS | (capped ? NLM_F_CAPPED : 0));
  Bytes body(4);
  int err = -17;  // EEXIST
  std::memcpy(body.data(), &err, 4);
  body.insert(body.end(), req.data(), req.data() + (capped ? NLMSG_HDRLEN : req.size()));
  b.header(body.data(), body.size());
  b.attr_str(NLMSGERR_ATTR_MSG, "File exists\n");
  b.attr_u32(NLMSGERR_ATTR_OFFS, 28);
  b.set_seq(42);
  return built(b);
}

Bytes done_msg() {
  uint8_t buf[128];
  nl::MsgBuilder b(buf, sizeof buf);
  b.begin(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS);
  int err = -4;  // EINTR: a dump the kernel gave up on
  b.header(&err, sizeof err);
  b.attr_str(NLMSGERR_ATTR_MSG, "Dump was interrupted ");
  return built(b);
}

void netlink_seeds() {
  write("fuzz_netlink", "link-vxlan", link_msg(5, "flannel.1", "vxlan"));
  write("fuzz_netlink", "addr", addr_msg());
  write("fuzz_netlink", "addr-flags", addr_flags_msg());
  write("fuzz_netlink", "route-gateway-onlink", route_msg(false));
  write("fuzz_netlink", "route-multipath-table", route_msg(true));
  write("fuzz_netlink", "error-capped", error_msg(true));
  write("fuzz_netlink", "error-uncapped", error_msg(false));
  write("fuzz_netlink", "done-interrupted", done_msg());
  Bytes dump = link_msg(1, "lo", "");
  append(dump, link_msg(2, "eth0", "veth"));
  append(dump, addr_msg());
  append(dump, addr_flags_msg());
  append(dump, route_msg(false));
  append(dump, done_msg());
  write("fuzz_netlink", "dump", dump);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  decap_seeds();
  gso_seeds();
  fib_seeds();
  coalesce_seeds();
  encap_seeds();
  netlink_seeds();
  return 0;
}
