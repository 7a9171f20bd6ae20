#include "core/fib.h"

#include <sched.h>
#include <time.h>

#include <algorithm>

namespace weft {

static uint32_t mask_of(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

bool normalize_entry(FibEntry* e) {
  if (e->prefix_len > 32) return false;
  e->prefix &= mask_of(e->prefix_len);
  e->peer.addr = sockaddr_in{};
  e->peer.addr.sin_family = AF_INET;
  e->peer.addr.sin_port = htons(e->peer.port);
  e->peer.addr.sin_addr.s_addr = htonl(e->peer.public_ip);
  return true;
}

const Peer* Fib::lookup(uint32_t dst) const {
  for (const Level& l : levels_) {
    auto it = l.by_prefix.find(dst & l.mask);
    if (it != l.by_prefix.end()) return &it->second;
  }
  return nullptr;
}

std::vector<FibEntry> Fib::entries() const {
  std::vector<FibEntry> out;
  out.reserve(size_);
  for (const Level& l : levels_) {
    for (const auto& [prefix, peer] : l.by_prefix) out.push_back(FibEntry{prefix, l.len, peer});
  }
  std::sort(out.begin(), out.end(), [](const FibEntry& a, const FibEntry& b) {
    return a.prefix != b.prefix ? a.prefix < b.prefix : a.prefix_len < b.prefix_len;
  });
  return out;
}

void Fib::upsert(const FibEntry& e) {
  auto it = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.len <= e.prefix_len; });
  if (it == levels_.end() || it->len != e.prefix_len) {
    it = levels_.insert(it, Level{e.prefix_len, mask_of(e.prefix_len), {}});
  }
  auto [slot, inserted] = it->by_prefix.try_emplace(e.prefix, e.peer);
  if (inserted) {
    size_++;
  } else {
    if (slot->second.public_ip == e.peer.public_ip) {
      slot->second = e.peer;
      return;
    }
    drop_ip(slot->second.public_ip);
    slot->second = e.peer;
  }
  peer_ips_[e.peer.public_ip]++;
}

void Fib::remove(uint32_t prefix, uint8_t prefix_len) {
  auto it = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.len == prefix_len; });
  if (it == levels_.end()) return;
  auto at = it->by_prefix.find(prefix);
  if (at == it->by_prefix.end()) return;
  drop_ip(at->second.public_ip);
  it->by_prefix.erase(at);
  size_--;
  if (it->by_prefix.empty()) levels_.erase(it);
}

void Fib::clear() {
  levels_.clear();
  peer_ips_.clear();
  size_ = 0;
}

void Fib::drop_ip(uint32_t public_ip) {
  auto it = peer_ips_.find(public_ip);
  if (it != peer_ips_.end() && --it->second == 0) peer_ips_.erase(it);
}

FibTable::FibTable() : current_(&copies_[0]) {}

const Fib* FibTable::enter(int reader) {
  readers_[reader].seen.store(generation_.load());
  return current_.load();
}

void FibTable::idle(int reader) { readers_[reader].seen.store(kIdle); }

void FibTable::apply(Fib& fib, const Change& c) {
  if (c.replace) fib.clear();
  for (const FibEntry& r : c.removals) fib.remove(r.prefix, r.prefix_len);
  for (const FibEntry& u : c.upserts) fib.upsert(u);
}

bool FibTable::standby_free_locked() const {
  for (const ReaderSlot& r : readers_) {
    uint64_t seen = r.seen.load();
    if (seen != kIdle && seen < retired_gen_) return false;
  }
  return true;
}

void FibTable::wait_standby_free_locked() const {
  // A reader that announced a generation before the standby was retired
  // may still hold it. Readers go idle before they block and a batch is
  // short, so this rarely waits, and then for microseconds.
  for (unsigned spins = 0; !standby_free_locked(); spins++) {
    if (spins < 64) {
      sched_yield();
    } else {
      timespec pause{0, 20 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
}

void FibTable::commit_locked(Change c) {
  wait_standby_free_locked();
  Fib& standby = copies_[1 - active_];
  if (!c.replace) apply(standby, pending_);
  apply(standby, c);
  current_.store(&standby);
  // A reader that loads the generation after this increment also sees the
  // new pointer; one that saw an older one may still hold the old copy.
  retired_gen_ = generation_.fetch_add(1) + 1;
  active_ = 1 - active_;
  pending_ = std::move(c);
  if (pending_.replace && standby_free_locked()) {
    // A whole table is O(n) anyway: bring the other copy up to date now,
    // if no reader holds it, rather than make the next one-peer change pay.
    apply(copies_[1 - active_], pending_);
    pending_ = Change{};
  }
}

namespace {
std::vector<FibEntry> normalized(const std::vector<FibEntry>& in) {
  std::vector<FibEntry> out;
  out.reserve(in.size());
  for (FibEntry e : in) {
    if (normalize_entry(&e)) out.push_back(e);
  }
  return out;
}
}  // namespace

void FibTable::replace(const std::vector<FibEntry>& entries) {
  std::lock_guard<std::mutex> lock(write_mu_);
  commit_locked(Change{true, normalized(entries), {}});
}

void FibTable::update(const std::vector<FibEntry>& upserts, const std::vector<FibEntry>& removals) {
  std::lock_guard<std::mutex> lock(write_mu_);
  commit_locked(Change{false, normalized(upserts), normalized(removals)});
}

std::vector<FibEntry> FibTable::entries() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return copies_[active_].entries();
}

size_t FibTable::size() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return copies_[active_].size();
}

}  // namespace weft
