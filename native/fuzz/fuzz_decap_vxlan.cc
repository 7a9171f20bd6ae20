// weft::decap, vxlan format: what anyone on the underlay can send to 8472.
#include "fuzz/decap_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::fuzz_decap(weft::Format::vxlan, data, size);
}
