// weft::FibTable: the left-right pair of tables the packet threads read
// with no lock while the control thread changes them (fib.h). Nothing here
// comes from outside, but the structure is subtle (a change is applied to
// the standby copy, published, and replayed onto the retired copy at the
// next change), so every step is checked against a plain model.
//
// Input: a run of steps, each  op (1 byte) | ...
//   op & 1 == 0  replace: n = next byte % 9 entries follow
//   op & 1 == 1  update: n = next byte % 5 upserts, then m = next % 3 removals
//   an entry is 2 bytes: prefix index (bits 0-3: 10.0.i.0, bit 4: 10.1.0.0
//   instead), length (bits 5-6: /16, /24, /32 or /40, which must be
//   skipped) and the peer's address (second byte & 7: 192.168.0.x);
//   op & 2: a reader enters before the change and must still see the old
//   table afterwards (the writer must never touch the copy it holds).
// Checked after every step: a fresh reader's lookups of every address that
// matters, is_peer of every peer address and entries() all agree with the
// model; so does size().
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "core/fib.h"
#include "fuzz/fuzz_util.h"

namespace {

using Key = std::pair<uint32_t, uint8_t>;  // prefix, length
using Model = std::map<Key, uint32_t>;     // -> public IP

uint32_t mask_of(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

weft::FibEntry entry_of(const uint8_t* b) {
  static const uint8_t kLens[4] = {16, 24, 32, 40};
  weft::FibEntry e;
  e.prefix = (b[0] & 0x10) ? 0x0a010000u : 0x0a000000u | (uint32_t{b[0] & 0x0fu} << 8);
  e.prefix_len = kLens[(b[0] >> 5) & 3];
  e.peer.public_ip = 0xc0a80000u | (b[1] & 7u);
  e.peer.port = 8472;
  return e;
}

void apply(Model& m, const weft::FibEntry& e, bool remove) {
  if (e.prefix_len > 32) return;
  Key k{e.prefix & mask_of(e.prefix_len), e.prefix_len};
  if (remove) m.erase(k);
  else m[k] = e.peer.public_ip;
}

// The model's longest-prefix answer: the peer's address, or 0 for none.
uint32_t lookup(const Model& m, uint32_t dst) {
  const std::pair<const Key, uint32_t>* best = nullptr;
  for (const auto& kv : m) {
    if ((dst & mask_of(kv.first.second)) == kv.first.first && (!best || kv.first.second > best->first.second)) best = &kv;
  }
  return best ? best->second : 0;
}

void check(const weft::Fib& fib, const Model& m) {
  for (uint32_t i = 0; i < 16; i++) {
    for (uint32_t host : {0u, 1u, 255u}) {
      for (uint32_t base : {0x0a000000u, 0x0a010000u}) {
        uint32_t dst = base | (i << 8) | host;
        const weft::Peer* p = fib.lookup(dst);
        uint32_t want = lookup(m, dst);
        FUZZ_CHECK(want == 0 ? p == nullptr : (p && p->public_ip == want));
        if (p) FUZZ_CHECK(p->addr.sin_addr.s_addr == htonl(p->public_ip) && p->addr.sin_port == htons(8472));
      }
    }
  }
  for (uint32_t x = 0; x < 8; x++) {
    uint32_t ip = 0xc0a80000u | x;
    bool used = std::any_of(m.begin(), m.end(), [&](const auto& kv) { return kv.second == ip; });
    FUZZ_CHECK(fib.is_peer(ip) == used);
  }
  std::vector<weft::FibEntry> got = fib.entries();
  FUZZ_CHECK(got.size() == m.size() && fib.size() == m.size());
  auto it = m.begin();
  for (const weft::FibEntry& e : got) {
    FUZZ_CHECK(e.prefix == it->first.first && e.prefix_len == it->first.second && e.peer.public_ip == it->second);
    ++it;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weft::FibTable table;
  Model model;
  size_t at = 0;
  auto take = [&](size_t n) -> const uint8_t* {
    if (at + n > size) return nullptr;
    const uint8_t* p = data + at;
    at += n;
    return p;
  };
  for (unsigned step = 0; step < 64; step++) {
    const uint8_t* op = take(2);
    if (!op) break;
    bool hold = (op[0] & 2) != 0;
    const weft::Fib* held = hold ? table.enter(0) : nullptr;
    Model before = model;
    std::vector<weft::FibEntry> ups, rems;
    if ((op[0] & 1) == 0) {
      for (unsigned n = op[1] % 9; n > 0; n--) {
        const uint8_t* e = take(2);
        if (!e) break;
        ups.push_back(entry_of(e));
      }
      model.clear();
      for (const auto& e : ups) apply(model, e, false);
      table.replace(ups);
    } else {
      unsigned nu = op[1] % 5, nr = (op[1] >> 3) % 3;
      for (; nu > 0; nu--) {
        const uint8_t* e = take(2);
        if (!e) break;
        ups.push_back(entry_of(e));
      }
      for (; nr > 0; nr--) {
        const uint8_t* e = take(2);
        if (!e) break;
        rems.push_back(entry_of(e));
      }
      for (const auto& e : rems) apply(model, e, true);
      for (const auto& e : ups) apply(model, e, false);
      table.update(ups, rems);
    }
    if (held) {
      check(*held, before);  // untouched while held
      table.idle(0);         // or the next change would wait for it forever
    }
    check(*table.enter(1), model);
    table.idle(1);
  }
  return 0;
}
