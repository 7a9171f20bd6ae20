// JS surface of the core microbenchmarks (native/bench/core_bench.h): the
// arguments in, the count out; nothing else happens here.
#include <memory>

#include "bench/core_bench.h"
#include "napi/bindings.h"

namespace weft::napi {

namespace {

class BenchWrap : public Napi::ObjectWrap<BenchWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CoreBench", {InstanceMethod<&BenchWrap::run>("run")});
  }

  // new CoreBench(op, format, size, batch)
  explicit BenchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BenchWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "op must be a string");
    if (!info[2].IsNumber() || !info[3].IsNumber()) throw Napi::TypeError::New(env, "size and batch must be numbers");
    Format format = format_arg(env, info[1]);
    try {
      bench_ = std::make_unique<bench::CoreBench>(info[0].As<Napi::String>().Utf8Value(), format,
                                                  info[2].As<Napi::Number>().Uint32Value(),
                                                  info[3].As<Napi::Number>().Uint32Value());
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(env, e.what());
    }
  }

 private:
  Napi::Value run(const Napi::CallbackInfo& info) {
    uint32_t iterations = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1;
    return Napi::Number::New(info.Env(), static_cast<double>(bench_->run(iterations)));
  }

  std::unique_ptr<bench::CoreBench> bench_;
};

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) { exports.Set("CoreBench", BenchWrap::define(env)); }

}  // namespace weft::napi
