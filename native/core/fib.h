// The forwarding table: overlay subnet -> peer, longest prefix wins.
//
// Readers are the packet threads and take no lock; the writer is the
// control thread. A change must cost in proportion to what changed (one
// lease in a cluster of thousands), so the table is not rebuilt per change
// (the first version copied it for every delta and deduplicated in O(n^2):
// 44 ms for one peer at 5,000). Instead there are two copies, left and
// right: readers use the active one; the writer applies a change to the
// other (standby) copy, publishes it, and keeps the change in a short log.
// The copy it just retired still has readers, so the log is replayed onto
// it at the start of the next change, once every reader has been seen past
// it (quiescent-state detection: a reader announces the generation it
// entered in, and "idle" before it blocks). A delta thus costs O(changed
// entries), a full replacement O(n), and memory is two tables, never more.
//
// The hot path: lookup() walks the prefix lengths in use, longest first
// (one hash probe each; flannel leases share one length), is_peer() is one
// probe. Peer pointers stay valid until the reader's next enter()/idle().
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
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

// One copy of the table. Only FibTable's writer mutates it, and only while
// no reader can see it.
class Fib {
 public:
  // nullptr when no entry covers dst (host order).
  const Peer* lookup(uint32_t dst) const;
  bool is_peer(uint32_t public_ip) const { return peer_ips_.count(public_ip) != 0; }
  size_t size() const { return size_; }
  std::vector<FibEntry> entries() const;

  // e must be normalized. Replaces an entry with the same prefix/length.
  void upsert(const FibEntry& e);
  void remove(uint32_t prefix, uint8_t prefix_len);
  void clear();

 private:
  struct Level {
    uint8_t len;
    uint32_t mask;
    std::unordered_map<uint32_t, Peer> by_prefix;
  };
  void drop_ip(uint32_t public_ip);

  std::vector<Level> levels_;  // longest prefix first; none empty
  std::unordered_map<uint32_t, uint32_t> peer_ips_;  // public IP -> entries using it
  size_t size_ = 0;
};

class FibTable {
 public:
  static constexpr int kMaxReaders = 8;

  FibTable();
  FibTable(const FibTable&) = delete;
  FibTable& operator=(const FibTable&) = delete;

  // Reader side (a packet thread with its own slot number). The snapshot
  // stays valid until that reader's next enter() or idle(); a reader calls
  // idle() before anything that may block, so a writer never waits long.
  const Fib* enter(int reader);
  void idle(int reader);

  // Writer side (the control thread). Entries need not be normalized; an
  // entry with prefix_len > 32 is skipped. Within one call a later entry
  // for a prefix wins over an earlier one; removals apply before upserts.
  void replace(const std::vector<FibEntry>& entries);
  void update(const std::vector<FibEntry>& upserts, const std::vector<FibEntry>& removals);
  std::vector<FibEntry> entries() const;
  size_t size() const;

 private:
  struct Change {
    bool replace = false;
    std::vector<FibEntry> upserts;
    std::vector<FibEntry> removals;
  };
  static void apply(Fib& fib, const Change& c);
  // Caller holds write_mu_: waits for readers to leave the standby copy,
  // brings it up to date, applies c, publishes it and logs c for the other.
  void commit_locked(Change c);
  bool standby_free_locked() const;       // caller holds write_mu_
  void wait_standby_free_locked() const;  // caller holds write_mu_

  static constexpr uint64_t kIdle = ~uint64_t{0};
  struct alignas(64) ReaderSlot {
    std::atomic<uint64_t> seen{kIdle};
  };

  Fib copies_[2];
  std::atomic<const Fib*> current_;
  std::atomic<uint64_t> generation_{1};
  ReaderSlot readers_[kMaxReaders];
  mutable std::mutex write_mu_;
  int active_ = 0;            // guarded by write_mu_
  uint64_t retired_gen_ = 0;  // the standby stopped being current in this generation
  Change pending_;            // applied to the active copy, not yet to the standby
};

}  // namespace weft
