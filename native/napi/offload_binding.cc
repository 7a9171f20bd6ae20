// JS surface of the pure offload functions, for unit tests: segmentation of
// a super-packet (both layouts) and coalescing of segments, byte for byte,
// and the checksum's implementations.
#include <cstring>

#include "core/checksum.h"
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

// segment(packet, {gsoType, gsoSize}, lead?, headersOnly?) -> {verdict, segments: Buffer[], stride}
// headersOnly: gso_segment_headers, each segment put together from its
// header block and its payload iovec, as the kernel reads the datagram.
Napi::Value js_segment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array pkt = bytes_value(arg(info, 0), "packet");
  Napi::Object o = object_value(arg(info, 1), "vnet header");
  VnetHdr h;
  h.gso_type = static_cast<uint8_t>(uint_value_or(o.Get("gsoType"), "gsoType", 0, 0, 0xff));
  h.gso_size = static_cast<uint16_t>(uint_value_or(o.Get("gsoSize"), "gsoSize", 0, 0, 0xffff));
  size_t lead = uint_value_or(arg(info, 2), "lead", 0, 0, 64);
  bool headers_only = !absent(arg(info, 3)) && bool_value(arg(info, 3), "headersOnly");
  std::vector<uint8_t> out(256 * 1024);
  Segments s = headers_only ? gso_segment_headers(h, pkt.Data(), pkt.ByteLength(), out.data(), out.size(), lead)
                            : gso_segment(h, pkt.Data(), pkt.ByteLength(), out.data(), out.size(), lead);
  Napi::Object r = Napi::Object::New(env);
  r.Set("verdict", counter_name(s.verdict));
  Napi::Array segs = Napi::Array::New(env, s.count);
  for (unsigned i = 0; i < s.count; i++) {
    size_t len = i + 1 < s.count ? s.seg_len : s.last_len;
    const uint8_t* at = out.data() + i * s.stride + lead;
    if (!headers_only) {
      segs.Set(i, Napi::Buffer<uint8_t>::Copy(env, at, len));
      continue;
    }
    iovec p = segment_payload(s, pkt.Data(), i);
    std::vector<uint8_t> joined(at, at + s.hdr_len);
    joined.insert(joined.end(), static_cast<uint8_t*>(p.iov_base), static_cast<uint8_t*>(p.iov_base) + p.iov_len);
    segs.Set(i, Napi::Buffer<uint8_t>::Copy(env, joined.data(), joined.size()));
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

// checksum(bytes, impl) -> the Internet checksum (the value a checksum field
// holds) by 'auto' (what the engine uses), 'portable' or 'avx2'; null when
// this CPU has no such implementation.
Napi::Value js_checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array b = bytes_value(arg(info, 0), "bytes");
  std::string impl = absent(arg(info, 1)) ? "auto" : string_value(arg(info, 1), "impl");
  uint32_t sum;
  if (impl == "auto") sum = csum_partial(b.Data(), b.ByteLength());
  else if (impl == "portable") sum = csum_partial_portable(b.Data(), b.ByteLength(), 0);
  else if (impl == "avx2") {
    if (!csum_partial_avx2) return env.Null();
    sum = csum_partial_avx2(b.Data(), b.ByteLength(), 0);
  } else {
    throw Napi::TypeError::New(env, "impl must be 'auto', 'portable' or 'avx2'");
  }
  return Napi::Number::New(env, static_cast<uint16_t>(~csum_fold(sum)));
}

}  // namespace

void register_offload(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("segment", Napi::Function::New(env, js_segment, "segment"));
  o.Set("completeChecksum", Napi::Function::New(env, js_complete_checksum, "completeChecksum"));
  o.Set("coalesce", Napi::Function::New(env, js_coalesce, "coalesce"));
  o.Set("checksum", Napi::Function::New(env, js_checksum, "checksum"));
  o.Set("checksumImpl", csum_impl() == CsumImpl::avx2 ? "avx2" : "portable");
  o.Set("GSO_TCPV4", kGsoTcpV4);
  o.Set("GSO_UDP_L4", kGsoUdpL4);
  exports.Set("offload", o);
}

}  // namespace weft::napi
