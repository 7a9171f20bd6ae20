// JS surface of the pure offload functions, for unit tests: segmentation of
// a super-packet and coalescing of segments, byte for byte.
#include <cstring>

#include "core/offload.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

Napi::Object vnet_object(const Napi::Env& env, const VnetHdr& h) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", h.flags);
  o.Set("gsoType", h.gso_type);
  o.Set("hdrLen", h.hdr_len);
  o.Set("gsoSize", h.gso_size);
  o.Set("csumStart", h.csum_start);
  o.Set("csumOffset", h.csum_offset);
  return o;
}

// segment(packet, {gsoType, gsoSize}, lead?) -> {verdict, segments: Buffer[]}
Napi::Value js_segment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array pkt = bytes_value(arg(info, 0), "packet");
  Napi::Object o = object_value(arg(info, 1), "vnet header");
  VnetHdr h;
  h.gso_type = static_cast<uint8_t>(uint_value_or(o.Get("gsoType"), "gsoType", 0, 0, 0xff));
  h.gso_size = static_cast<uint16_t>(uint_value_or(o.Get("gsoSize"), "gsoSize", 0, 0, 0xffff));
  size_t lead = uint_value_or(arg(info, 2), "lead", 0, 0, 64);
  std::vector<uint8_t> out(256 * 1024);
  Segments s = gso_segment(h, pkt.Data(), pkt.ByteLength(), out.data(), out.size(), lead);
  Napi::Object r = Napi::Object::New(env);
  r.Set("verdict", counter_name(s.verdict));
  Napi::Array segs = Napi::Array::New(env, s.count);
  for (unsigned i = 0; i < s.count; i++) {
    size_t len = i + 1 < s.count ? s.seg_len : s.last_len;
    segs.Set(i, Napi::Buffer<uint8_t>::Copy(env, out.data() + i * s.stride + lead, len));
  }
  r.Set("segments", segs);
  r.Set("stride", static_cast<double>(s.stride));
  return r;
}

// completeChecksum(packet, csumStart, csumOffset) -> Buffer | null
Napi::Value js_complete_checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array pkt = bytes_value(arg(info, 0), "packet");
  std::vector<uint8_t> copy(pkt.Data(), pkt.Data() + pkt.ByteLength());
  size_t start = uint_value(arg(info, 1), "csumStart", 0, UINT32_MAX);
  size_t offset = uint_value(arg(info, 2), "csumOffset", 0, UINT32_MAX);
  if (!complete_checksum(copy.data(), copy.size(), start, offset)) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, copy.data(), copy.size());
}

// coalesce(packets: Uint8Array[], maxInner?) -> [{vnet, packet: Buffer, segments}]
// With maxInner, a packet longer than it goes to add_super, as the engine
// sends a TCP super-packet decap took whole.
Napi::Value js_coalesce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array in = array_value(arg(info, 0), "packets");
  // Copies that stay put while the coalescer points into them.
  std::vector<std::vector<uint8_t>> held;
  held.reserve(in.Length());
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Uint8Array b = bytes_value(in.Get(i), "packets[" + std::to_string(i) + "]");
    held.emplace_back(b.Data(), b.Data() + b.ByteLength());
  }
  size_t max_inner = uint_value_or(arg(info, 1), "maxInner", 0, 0, UINT32_MAX);
  Coalescer c;
  c.reset();
  for (auto& p : held) {
    if (max_inner && p.size() > max_inner) c.add_super(p.data(), p.size(), max_inner);
    else c.add(p.data(), p.size());
  }
  c.finish();
  Napi::Array out = Napi::Array::New(env, c.writes().size());
  uint32_t k = 0;
  for (const TunWrite& w : c.writes()) {
    std::vector<uint8_t> pkt;
    for (size_t j = 0; j < w.iov_count; j++) {
      const iovec& v = c.iovs()[w.first_iov + j];
      const uint8_t* base = static_cast<const uint8_t*>(v.iov_base);
      pkt.insert(pkt.end(), base, base + v.iov_len);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("vnet", vnet_object(env, read_vnet_hdr(w.vnet)));
    o.Set("packet", Napi::Buffer<uint8_t>::Copy(env, pkt.data(), pkt.size()));
    o.Set("segments", w.segments);
    o.Set("bytes", static_cast<double>(w.bytes));
    out.Set(k++, o);
  }
  return out;
}

}  // namespace

void register_offload(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("segment", Napi::Function::New(env, js_segment, "segment"));
  o.Set("completeChecksum", Napi::Function::New(env, js_complete_checksum, "completeChecksum"));
  o.Set("coalesce", Napi::Function::New(env, js_coalesce, "coalesce"));
  o.Set("GSO_TCPV4", kGsoTcpV4);
  o.Set("GSO_UDP_L4", kGsoUdpL4);
  exports.Set("offload", o);
}

}  // namespace weft::napi
