// weft::decap, udp format: what anyone on the underlay can send to 8285.
#include "fuzz/decap_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::fuzz_decap(weft::Format::udp, data, size);
}
