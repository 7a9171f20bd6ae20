#include "core/tx_path.h"

#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/engine.h"

namespace weft {

namespace {

// Header blocks of one drain's segments (zero copy), or the copied segments
// of one super-packet: 64 KiB of payload even at Linux's smallest MSS (48),
// where a super-packet becomes ~1400 segments. Untouched pages cost no RSS.
constexpr size_t kSegmentBuffer = 256 * 1024;

void set_udp_segment(mmsghdr& m, Control& c, uint16_t size) {
  m.msg_hdr.msg_control = c.bytes;
  m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  cmsghdr* cm = CMSG_FIRSTHDR(&m.msg_hdr);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  std::memcpy(CMSG_DATA(cm), &size, sizeof size);
}

}  // namespace

TxPath::TxPath(const EngineConfig& cfg, int tun_fd, UdpSocket& sock, Counters& counters)
    : cfg_(cfg),
      tun_(tun_fd),
      sock_(sock),
      counters_(counters),
      ep_{cfg.format, cfg.vni, cfg.local_mac},
      vnet_(cfg.offload ? kVnetHdrLen : 0),
      lead_(encap_len(cfg.format)),
      slot_(align_up(kHeadroom + kMaxPacket, kCacheLine)),
      cap_(cfg.batch_bytes ? cfg.batch_bytes : size_t{cfg.batch} * slot_),
      // Room for a batch of plain packets plus the messages of a few
      // super-packets (up to 64 segments, two iovecs each); a queue that
      // would overflow is flushed first.
      max_msgs_(cfg.batch + 2 * kMaxSegments),
      max_iov_(cfg.batch + 8 * kMaxSegments),
      arena_(cap_ + slot_),
      blocks_(cfg.offload && cfg.zero_copy ? kSegmentBuffer : 0),
      segs_(cfg.offload && !cfg.zero_copy ? kSegmentBuffer : 0) {
  out_.reserve(max_msgs_);
  iov_.reserve(max_iov_);
  msgs_.resize(max_msgs_);
  ctrl_.resize(max_msgs_);
  errs_.resize(max_msgs_);
}

int TxPath::drain(FibTable& fibs, int reader) {
  fibs_ = &fibs;
  reader_ = reader;
  fib_ = fibs.enter(reader);
  size_t pos = 0;
  unsigned got = 0;
  int err = 0;
  while (got < cfg_.batch && pos < cap_) {
    uint8_t* slot = arena_.data() + pos;
    ssize_t r = ::read(tun_, slot + kHeadroom - vnet_, kMaxPacket + vnet_);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) err = errno;
      break;
    }
    got++;
    if (static_cast<size_t>(r) <= vnet_) continue;  // nothing behind the virtio-net header
    size_t len = static_cast<size_t>(r) - vnet_;
    handle(slot, len);
    pos += align_up(kHeadroom + len, kCacheLine);
  }
  flush();
  fibs.idle(reader);
  fib_ = nullptr;
  return err ? -err : static_cast<int>(got);
}

void TxPath::handle(uint8_t* slot, size_t len) {
  uint8_t* inner = slot + kHeadroom;
  if (vnet_) {
    VnetHdr vh = read_vnet_hdr(inner - kVnetHdrLen);
    if ((vh.gso_type & static_cast<uint8_t>(~kGsoEcn)) != kGsoNone) {
      handle_gso(vh, inner, len);
      return;
    }
    if ((vh.flags & kVnetFlagNeedsCsum) && !complete_checksum(inner, len, vh.csum_start, vh.csum_offset)) {
      counters_.add(Counter::tx_drop_bad_ipv4, len);
      return;
    }
  }
  Counter v = check_tx_ipv4(inner, len);
  if (v == Counter::tx_packets && is_own_datagram(inner, len, cfg_.local_ip, cfg_.port)) v = Counter::tx_drop_loop;
  if (v != Counter::tx_packets) {
    counters_.add(v, len);
    return;
  }
  const Peer* found = fib_->lookup(ipv4_dst(inner));
  if (!found) {
    counters_.add(Counter::tx_drop_no_route, len);
    return;
  }
  const Peer peer = *found;  // a flush re-enters the FIB
  size_t off = 0, olen = 0;
  v = encap(ep_, peer.vtep_mac, slot, kHeadroom, len, &off, &olen);
  if (v != Counter::tx_packets) {
    counters_.add(v, len);
    return;
  }
  queue_plain(peer, slot + off, olen, len);
}

void TxPath::queue_plain(const Peer& peer, uint8_t* data, size_t len, size_t inner_len) {
  if (cfg_.send_runs && !out_.empty() && room(0, 1)) {
    OutMsg& m = out_.back();
    // Every datagram of a UDP_SEGMENT run is the run's size but the last,
    // which may be shorter (and then ends it).
    const size_t unit = m.seg ? m.seg : m.wire;
    if (m.open && m.dst.sin_addr.s_addr == peer.addr.sin_addr.s_addr && m.dst.sin_port == peer.addr.sin_port &&
        len <= unit && m.packets < kMaxSegments && m.wire + len <= kMaxUdpPayload) {
      iov_.push_back({data, len});
      m.iov_count++;
      m.packets++;
      m.bytes += inner_len;
      m.wire += len;
      m.seg = static_cast<uint16_t>(unit);
      m.open = len == unit;
      return;
    }
  }
  if (!room(1, 1)) flush();
  iov_.push_back({data, len});
  queue(peer, iov_.size() - 1, 1, 1, inner_len, 0);
  out_.back().open = true;
  out_.back().wire = len;
}

void TxPath::handle_gso(const VnetHdr& vh, uint8_t* inner, size_t len) {
  if (len < kIpv4MinHeader) {
    counters_.add(Counter::tx_drop_bad_gso, len);
    return;
  }
  // A UDP_SEGMENT run of ours comes back as one USO super-packet.
  if (is_own_datagram(inner, len, cfg_.local_ip, cfg_.port)) {
    counters_.add(Counter::tx_drop_loop, len);
    return;
  }
  const Peer* found = fib_->lookup(ipv4_dst(inner));
  if (!found) {
    counters_.add(Counter::tx_drop_no_route, len);
    return;
  }
  if (cfg_.format == Format::udp && inner[8] <= 1) {
    counters_.add(Counter::tx_drop_ttl, len);
    return;
  }
  const Peer peer = *found;
  Segments sg;
  uint8_t* blocks;
  if (cfg_.zero_copy) {
    if (out_.empty()) blocks_used_ = 0;  // nothing queued points into the blocks
    blocks = blocks_.data() + blocks_used_;
    sg = gso_segment_headers(vh, inner, len, blocks, blocks_.size() - blocks_used_, lead_);
    if (sg.verdict != Counter::tx_packets && blocks_used_ > 0) {
      // Perhaps only out of room: send what is queued and try again.
      flush();
      blocks_used_ = 0;
      blocks = blocks_.data();
      sg = gso_segment_headers(vh, inner, len, blocks, blocks_.size(), lead_);
    }
  } else {
    // One segment buffer: what is queued goes first, the run right after.
    flush();
    blocks = segs_.data();
    sg = gso_segment(vh, inner, len, blocks, segs_.size(), lead_);
  }
  if (sg.verdict == Counter::tx_packets && lead_ + sg.seg_len > kMaxUdpPayload) sg.verdict = Counter::tx_drop_bad_gso;
  if (sg.verdict != Counter::tx_packets) {
    counters_.add(sg.verdict, len);
    return;
  }
  if (cfg_.zero_copy) blocks_used_ += sg.count * sg.stride;
  for (unsigned k = 0; k < sg.count; k++) {
    size_t off = 0, olen = 0;
    encap(ep_, peer.vtep_mac, blocks + k * sg.stride, lead_, k + 1 < sg.count ? sg.seg_len : sg.last_len, &off, &olen);
  }
  queue_run(sg, blocks, cfg_.zero_copy ? inner : nullptr, peer);
  if (!cfg_.zero_copy) flush();
}

// The datagrams of one super-packet as UDP_SEGMENT messages of up to 64
// datagrams (and 64 KB): each datagram is its header block and its payload
// in the arena (payload_src), or one stretch of the segment buffer.
void TxPath::queue_run(const Segments& sg, uint8_t* blocks, const uint8_t* payload_src, const Peer& peer) {
  const size_t wire = lead_ + sg.seg_len;  // one datagram's UDP payload
  const unsigned per_msg = static_cast<unsigned>(std::min<size_t>(kMaxSegments, kMaxUdpPayload / wire));
  for (unsigned k = 0; k < sg.count; k += per_msg) {
    unsigned m = std::min(per_msg, sg.count - k);
    size_t tail = k + m == sg.count ? sg.last_len : sg.seg_len;
    if (!room(1, payload_src ? 2 * size_t{m} : 1)) flush();
    size_t first = iov_.size();
    if (payload_src) {
      for (unsigned j = k; j < k + m; j++) {
        iov_.push_back({blocks + j * sg.stride, lead_ + sg.hdr_len});
        iov_.push_back(segment_payload(sg, payload_src, j));
      }
    } else {
      iov_.push_back({blocks + k * sg.stride, (m - 1) * sg.stride + lead_ + tail});
    }
    queue(peer, first, iov_.size() - first, m, (m - 1) * sg.seg_len + tail, m > 1 ? static_cast<uint16_t>(wire) : 0);
    out_.back().wire = (m - 1) * wire + lead_ + tail;
  }
}

bool TxPath::room(size_t msgs, size_t iovs) const {
  return out_.size() + msgs <= max_msgs_ && iov_.size() + iovs <= max_iov_;
}

void TxPath::queue(const Peer& peer, size_t iov_first, size_t iov_count, unsigned packets, size_t bytes, uint16_t seg) {
  out_.push_back(OutMsg{peer.addr, iov_first, iov_count, packets, bytes, 0, seg, false});
}

void TxPath::flush() {
  if (out_.empty()) return;
  // Everything queued carries its own copy of the peer's address: the
  // reader goes idle while the send may block (SO_SNDTIMEO), so a FIB
  // writer never waits on a full socket.
  if (fib_) fibs_->idle(reader_);
  const size_t n = out_.size();
  for (size_t i = 0; i < n; i++) {
    OutMsg& o = out_[i];
    mmsghdr& m = msgs_[i];
    m = {};
    m.msg_hdr.msg_name = &o.dst;
    m.msg_hdr.msg_namelen = sizeof(sockaddr_in);
    m.msg_hdr.msg_iov = &iov_[o.iov_first];
    m.msg_hdr.msg_iovlen = o.iov_count;
    if (o.seg) set_udp_segment(m, ctrl_[i], o.seg);
  }
  sock_.send_batch(msgs_.data(), static_cast<unsigned>(n), errs_.data());
  for (size_t i = 0; i < n; i++) {
    const OutMsg& o = out_[i];
    // The kernel refuses a UDP_SEGMENT message whose segments the route
    // cannot carry whole (EINVAL), though it would fragment the same
    // datagrams sent one by one: an underlay MTU set too high, a route over
    // a smaller link. A full socket (EAGAIN after the send timeout) would
    // refuse those too: that run is dropped.
    if (!msgs_[i].msg_len && o.seg && errs_[i] != EAGAIN && errs_[i] != EWOULDBLOCK) {
      send_one_by_one(o);
      continue;
    }
    Counter c = msgs_[i].msg_len ? Counter::tx_packets : Counter::tx_drop_send_error;
    counters_.add(c, o.bytes, o.packets);
  }
  out_.clear();
  iov_.clear();
  if (fib_) fib_ = fibs_->enter(reader_);
}

// A refused UDP_SEGMENT message, resent as single datagrams of m.seg bytes
// (the last shorter), counted under tx_gso_fallback too.
void TxPath::send_one_by_one(const OutMsg& m) {
  // Each datagram is one stretch of a copied run or a header block and a
  // payload: never more than two pieces.
  iovec pieces[2 * kMaxSegments];
  mmsghdr one[kMaxSegments];
  size_t lens[kMaxSegments];
  int errs[kMaxSegments];
  size_t p = 0;
  unsigned d = 0;
  size_t iv = m.iov_first, off = 0;
  const size_t end = m.iov_first + m.iov_count;
  while (iv < end && d < kMaxSegments) {
    const size_t first = p;
    size_t want = m.seg, got = 0;
    while (want > 0 && iv < end && p < 2 * kMaxSegments) {
      size_t take = std::min(want, iov_[iv].iov_len - off);
      pieces[p++] = {static_cast<uint8_t*>(iov_[iv].iov_base) + off, take};
      want -= take;
      got += take;
      off += take;
      if (off == iov_[iv].iov_len) {
        iv++;
        off = 0;
      }
    }
    one[d] = {};
    one[d].msg_hdr.msg_name = const_cast<sockaddr_in*>(&m.dst);
    one[d].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    one[d].msg_hdr.msg_iov = &pieces[first];
    one[d].msg_hdr.msg_iovlen = p - first;
    lens[d++] = got;
  }
  sock_.send_batch(one, d, errs);
  for (unsigned k = 0; k < d; k++) {
    size_t inner = lens[k] - lead_;
    counters_.add(Counter::tx_gso_fallback, inner);
    counters_.add(one[k].msg_len ? Counter::tx_packets : Counter::tx_drop_send_error, inner);
  }
}

}  // namespace weft
