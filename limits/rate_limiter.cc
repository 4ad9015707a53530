#include "limits/rate_limiter.h"

#include <algorithm>

namespace crest::limits {

RateLimiter::RateLimiter(BucketSpec spec, size_t max_keys)
    : spec_(spec), per_shard_(std::max<size_t>(1, max_keys / kShards)), shards_(kShards) {}

RateDecision RateLimiter::take(uint64_t key, Nanos now) {
  // The low bits pick the shard; the hash table uses the whole key.
  Shard& shard = shards_[(key ^ (key >> 32)) % kShards];
  std::lock_guard lock(shard.mu);
  auto found = shard.index.find(key);
  if (found != shard.index.end()) {
    shard.recent.splice(shard.recent.begin(), shard.recent, found->second);
  } else {
    // Forget refilled buckets from the cold end; when the shard is still
    // full, the least recently seen key goes.
    while (!shard.recent.empty() && shard.recent.back().bucket.fullAt(now)) {
      shard.index.erase(shard.recent.back().key);
      shard.recent.pop_back();
    }
    if (shard.recent.size() >= per_shard_) {
      shard.index.erase(shard.recent.back().key);
      shard.recent.pop_back();
    }
    shard.recent.push_front(Entry{key, TokenBucket(now)});
    shard.index.emplace(key, shard.recent.begin());
  }
  return shard.recent.front().bucket.take(spec_, now);
}

size_t RateLimiter::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.recent.size();
  }
  return n;
}

}  // namespace crest::limits
