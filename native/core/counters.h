// Per-reason packet and byte counters. Each counter has one writer (the tx or
// the rx thread), so an increment is a relaxed load and store, not a locked
// add; each sits on its own cache line so the two threads never share one.
// Readers (the JS thread) take relaxed loads: a snapshot may straddle a batch.
#pragma once

#include <atomic>
#include <cstdint>

namespace weft {

// X(name): the enum name is also the name TS sees.
#define WEFT_COUNTERS(X)                                                      \
  X(tx_packets)          /* encapsulated and handed to the UDP socket */      \
  X(tx_drop_not_ipv4)    /* TUN gave us something that is not IPv4 */         \
  X(tx_drop_bad_ipv4)    /* IPv4 with a bad header or length from the TUN */  \
  X(tx_drop_no_route)    /* no peer subnet holds the destination */           \
  X(tx_drop_ttl)         /* udp format: TTL would reach 0 */                  \
  X(tx_drop_bad_gso)     /* a TUN super-packet we cannot segment */           \
  X(tx_drop_send_error)  /* sendmmsg refused the datagram */                  \
  X(tx_drop_loop)        /* one of our own datagrams came back into the TUN */ \
  X(tx_gso_fallback)     /* not a drop: sent one by one after the kernel      \
                            refused them as one UDP_SEGMENT message (also in  \
                            tx_packets or tx_drop_send_error) */              \
  X(rx_packets)          /* decapsulated and written to the TUN */            \
  X(rx_drop_unknown_peer) /* sender's IP is not a current peer */             \
  X(rx_drop_truncated)   /* shorter than the headers it claims */             \
  X(rx_drop_oversized)   /* inner packet larger than the TUN MTU (but for a   \
                            TCP super-packet with a sound checksum) */        \
  X(rx_drop_bad_vxlan_flags) /* I flag clear or a reserved bit set */         \
  X(rx_drop_wrong_vni)   /* VNI is not ours */                                \
  X(rx_drop_wrong_mac)   /* inner destination MAC is not our VtepMAC */       \
  X(rx_drop_bad_ethertype) /* inner frame is not IPv4 */                      \
  X(rx_drop_not_ipv4)    /* IP version is not 4 */                            \
  X(rx_drop_bad_ihl)     /* IHL < 5 or past the end */                        \
  X(rx_drop_bad_length)  /* IPv4 total length disagrees with the datagram */  \
  X(rx_drop_inner_dst)   /* inner destination not in our subnet (or its     \
                            broadcast address) */                             \
  X(rx_drop_inner_src)   /* strict source: inner source not in the subnet of  \
                            the peer that sent the datagram */                \
  X(rx_csum_partial)     /* not a drop: a TCP/UDP checksum a peer left for a  \
                            NIC to fill in, completed by us or by the kernel  \
                            (also in rx_packets) */                           \
  X(rx_drop_tun_write_error) /* the TUN refused the packet */

enum class Counter : uint8_t {
#define WEFT_ENUM(name) name,
  WEFT_COUNTERS(WEFT_ENUM)
#undef WEFT_ENUM
  count
};

constexpr size_t kCounterCount = static_cast<size_t>(Counter::count);

const char* counter_name(Counter c);

class Counters {
 public:
  // Caller is the counter's only writer. `packets` > 1 counts a run sent or
  // written at once (one UDP_SEGMENT message, one coalesced TUN write).
  void add(Counter c, uint64_t bytes, uint64_t packets = 1) {
    Slot& s = slots_[static_cast<size_t>(c)];
    s.packets.store(s.packets.load(std::memory_order_relaxed) + packets, std::memory_order_relaxed);
    s.bytes.store(s.bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
  }
  uint64_t packets(Counter c) const {
    return slots_[static_cast<size_t>(c)].packets.load(std::memory_order_relaxed);
  }
  uint64_t bytes(Counter c) const {
    return slots_[static_cast<size_t>(c)].bytes.load(std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> bytes{0};
  };
  Slot slots_[kCounterCount];
};

}  // namespace weft
