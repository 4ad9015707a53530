#pragma once
// Open client connections per client address, across all workers, for
// limits.max_connections_per_client. Exact, not sampled: a client has an
// entry only while it has a connection open, so the table never holds more
// entries than there are connections (bounded by max_connections). Sharded
// by key so that workers accepting at once rarely wait on each other.
// Thread-safe.

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace crest::limits {

class ClientConnections {
 public:
  // Counts a connection of client `key`; false, and nothing counted, when
  // it has `limit` open already.
  bool take(uint64_t key, uint32_t limit);
  // One connection of `key` that take() counted has closed.
  void give(uint64_t key);
  // Clients with a connection open.
  size_t clients() const;

 private:
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, uint32_t> open;
  };
  Shard& shardOf(uint64_t key) { return shards_[(key >> 7) % shards_.size()]; }

  std::array<Shard, 16> shards_;
};

}  // namespace crest::limits
