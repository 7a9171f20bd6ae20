// The forwarding table: overlay subnet -> peer, longest prefix wins.
//
// The control layer builds a whole new Fib for every change (they are rare:
// a lease came or went) and publishes it; packet threads read the current
// snapshot with no lock. Old snapshots are freed once every reader has been
// seen past them (quiescent-state reclamation): a reader announces the
// generation it started a batch in, and announces "idle" before it blocks.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/packet.h"

namespace weft {

struct Peer {
  uint32_t public_ip = 0;  // host order
  uint16_t port = 0;
  Mac vtep_mac{};
  sockaddr_in addr{};  // public_ip:port, ready for sendmmsg
};

struct FibEntry {
  uint32_t prefix = 0;  // host order, host bits zero
  uint8_t prefix_len = 0;
  Peer peer;
};

// Fills peer.addr and masks the prefix; false when prefix_len > 32.
bool normalize_entry(FibEntry* e);

class Fib {
 public:
  explicit Fib(std::vector<FibEntry> entries);

  // nullptr when no entry covers dst (host order).
  const Peer* lookup(uint32_t dst) const;
  bool is_peer(uint32_t public_ip) const { return peer_ips_.count(public_ip) != 0; }
  const std::vector<FibEntry>& entries() const { return entries_; }

 private:
  struct Level {
    uint8_t len;
    uint32_t mask;
    std::unordered_map<uint32_t, size_t> by_prefix;  // -> index in entries_
  };
  std::vector<FibEntry> entries_;
  std::vector<Level> levels_;  // longest prefix first
  std::unordered_set<uint32_t> peer_ips_;
};

class FibTable {
 public:
  static constexpr int kMaxReaders = 8;

  FibTable();
  ~FibTable();
  FibTable(const FibTable&) = delete;
  FibTable& operator=(const FibTable&) = delete;

  // Reader side (a packet thread with its own slot number). The pointer
  // stays valid until that reader's next enter() or idle().
  const Fib* enter(int reader);
  void idle(int reader);

  // Writer side (the control thread). Replace the whole table, or upsert
  // entries (keyed by prefix/len) and remove prefixes.
  void replace(std::vector<FibEntry> entries);
  void update(const std::vector<FibEntry>& upserts, const std::vector<FibEntry>& removals);
  std::vector<FibEntry> entries() const;

 private:
  void publish_locked(std::unique_ptr<Fib> next);  // caller holds write_mu_
  void reclaim_locked();                            // caller holds write_mu_

  static constexpr uint64_t kIdle = ~uint64_t{0};
  struct alignas(64) ReaderSlot {
    std::atomic<uint64_t> seen{kIdle};
  };

  std::atomic<const Fib*> current_;
  std::atomic<uint64_t> generation_{1};
  ReaderSlot readers_[kMaxReaders];
  mutable std::mutex write_mu_;
  std::vector<std::pair<const Fib*, uint64_t>> retired_;  // snapshot, generation it was replaced in
};

}  // namespace weft
