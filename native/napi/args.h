// The argument converters of every binding, so each JS argument is checked
// one way: a value of the wrong type is a TypeError and a number out of range
// a RangeError, each naming the argument ("route.dstLen must be an integer
// 0..32"). Only types and ranges are checked here; what a value means is for
// the core or the kernel to judge.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "core/addr.h"

namespace weft::napi {

// info[i], or undefined past the end.
inline Napi::Value arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

// An optional argument or property left out: undefined or null.
inline bool absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

inline uint32_t uint_value(const Napi::Value& v, const std::string& name, uint32_t min, uint32_t max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != std::floor(d)) {
    throw Napi::RangeError::New(v.Env(), name + " must be an integer " + std::to_string(min) + ".." +
                                             std::to_string(max));
  }
  return static_cast<uint32_t>(d);
}

// uint_value, or `fallback` when the value is absent.
inline uint32_t uint_value_or(const Napi::Value& v, const std::string& name, uint32_t fallback, uint32_t min,
                              uint32_t max) {
  return absent(v) ? fallback : uint_value(v, name, min, max);
}

inline bool bool_value(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) throw Napi::TypeError::New(v.Env(), name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// bool_value, or `fallback` when the value is absent.
inline bool bool_value_or(const Napi::Value& v, const std::string& name, bool fallback) {
  return absent(v) ? fallback : bool_value(v, name);
}

inline std::string string_value(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), name + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Object object_value(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray()) throw Napi::TypeError::New(v.Env(), name + " must be an object");
  return v.As<Napi::Object>();
}

inline Napi::Array array_value(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), name + " must be an array");
  return v.As<Napi::Array>();
}

// A Buffer is a Uint8Array too.
inline Napi::Uint8Array bytes_value(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), name + " must be a Buffer or Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

inline Ip4 ip4_value(const Napi::Value& v, const std::string& name) {
  std::optional<Ip4> a;
  if (v.IsString()) a = parse_ip4(v.As<Napi::String>().Utf8Value());
  if (!a) throw Napi::TypeError::New(v.Env(), name + " must be a dotted-quad IPv4 address string");
  return *a;
}

inline Mac mac_value(const Napi::Value& v, const std::string& name) {
  Mac m{};
  if (!v.IsString() || !parse_mac(v.As<Napi::String>().Utf8Value(), &m)) {
    throw Napi::TypeError::New(v.Env(), name + " must be a MAC address like aa:bb:cc:dd:ee:ff");
  }
  return m;
}

}  // namespace weft::napi
