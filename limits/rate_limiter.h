#pragma once
// The token buckets of one rate-limited route, keyed by a 64-bit hash of the
// client's key (address, header or cookie value) and shared by all workers.
// The table is split into shards, each with its own small lock, so workers
// contend only when their keys land in the same shard. Memory is bounded:
// a bucket that has refilled is forgotten (it equals a new one), and a shard
// at its share of `max_keys` forgets its least recently seen key to make
// room, which then starts again with a full bucket. Thread-safe.

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "limits/token_bucket.h"

namespace crest::limits {

class RateLimiter {
 public:
  static constexpr size_t kDefaultMaxKeys = 65536;

  explicit RateLimiter(BucketSpec spec, size_t max_keys = kDefaultMaxKeys);

  RateDecision take(uint64_t key, Nanos now);
  const BucketSpec& spec() const { return spec_; }
  // Keys tracked now, all shards (takes every shard's lock: tests and stats only).
  size_t size() const;
  size_t maxKeys() const { return per_shard_ * kShards; }

 private:
  static constexpr size_t kShards = 64;
  struct Entry {
    uint64_t key;
    TokenBucket bucket;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> recent;  // most recently seen first
    std::unordered_map<uint64_t, std::list<Entry>::iterator> index;
  };

  const BucketSpec spec_;
  const size_t per_shard_;
  std::vector<Shard> shards_;
};

}  // namespace crest::limits
