#include "core/fib.h"

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

Fib::Fib(std::vector<FibEntry> entries) {
  // Normalize, drop what cannot be a prefix, and keep the last entry for a
  // prefix given twice (as update() does).
  for (FibEntry& e : entries) {
    if (!normalize_entry(&e)) continue;
    auto same = std::find_if(entries_.begin(), entries_.end(), [&](const FibEntry& x) {
      return x.prefix == e.prefix && x.prefix_len == e.prefix_len;
    });
    if (same != entries_.end()) *same = e;
    else entries_.push_back(e);
  }
  for (size_t i = 0; i < entries_.size(); i++) {
    const FibEntry& e = entries_[i];
    auto it = std::find_if(levels_.begin(), levels_.end(),
                           [&](const Level& l) { return l.len == e.prefix_len; });
    if (it == levels_.end()) {
      levels_.push_back(Level{e.prefix_len, mask_of(e.prefix_len), {}});
      it = levels_.end() - 1;
    }
    it->by_prefix[e.prefix] = i;
    peer_ips_.insert(e.peer.public_ip);
  }
  std::sort(levels_.begin(), levels_.end(), [](const Level& a, const Level& b) { return a.len > b.len; });
}

const Peer* Fib::lookup(uint32_t dst) const {
  for (const Level& l : levels_) {
    auto it = l.by_prefix.find(dst & l.mask);
    if (it != l.by_prefix.end()) return &entries_[it->second].peer;
  }
  return nullptr;
}

FibTable::FibTable() : current_(new Fib({})) {}

FibTable::~FibTable() {
  // Owner guarantees the readers have stopped.
  delete current_.load();
  for (auto& r : retired_) delete r.first;
}

const Fib* FibTable::enter(int reader) {
  readers_[reader].seen.store(generation_.load());
  return current_.load();
}

void FibTable::idle(int reader) { readers_[reader].seen.store(kIdle); }

void FibTable::publish_locked(std::unique_ptr<Fib> next) {
  const Fib* old = current_.exchange(next.release());
  // A reader that loads the generation after this increment also sees the
  // new pointer; one that saw an older generation may still hold `old`.
  uint64_t gen = generation_.fetch_add(1) + 1;
  retired_.emplace_back(old, gen);
  reclaim_locked();
}

void FibTable::reclaim_locked() {
  uint64_t oldest = kIdle;
  for (auto& r : readers_) oldest = std::min(oldest, r.seen.load());
  auto keep = std::remove_if(retired_.begin(), retired_.end(), [&](const auto& r) {
    if (r.second > oldest) return false;
    delete r.first;
    return true;
  });
  retired_.erase(keep, retired_.end());
}

void FibTable::replace(std::vector<FibEntry> entries) {
  std::lock_guard<std::mutex> lock(write_mu_);
  publish_locked(std::make_unique<Fib>(std::move(entries)));
}

void FibTable::update(const std::vector<FibEntry>& upserts, const std::vector<FibEntry>& removals) {
  std::lock_guard<std::mutex> lock(write_mu_);
  std::vector<FibEntry> next = current_.load()->entries();
  auto same_key = [](const FibEntry& a, const FibEntry& b) {
    return a.prefix == b.prefix && a.prefix_len == b.prefix_len;
  };
  auto drop = [&](const FibEntry& key) {
    next.erase(std::remove_if(next.begin(), next.end(), [&](const FibEntry& e) { return same_key(e, key); }),
               next.end());
  };
  for (const FibEntry& r : removals) drop(r);
  for (const FibEntry& u : upserts) {
    drop(u);
    next.push_back(u);
  }
  publish_locked(std::make_unique<Fib>(std::move(next)));
}

std::vector<FibEntry> FibTable::entries() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return current_.load()->entries();
}

}  // namespace weft
