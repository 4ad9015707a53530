#pragma once
// The response cache shared by all workers: complete responses keyed by host
// and path (with the query), one variant per set of request values of the
// headers the response's Vary names. Bounded in bytes (headers and bodies);
// beyond the bound the least recently used entries go. Split into shards,
// each with its own lock, so workers contend only on the same shard; small
// caches use one shard so the LRU order is exact.
//
// It also coalesces misses: the first request to miss a key leads (goes to
// the server and fills the cache), later ones wait until it ends. Thread-safe;
// waiters are told outside any lock.

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/cache_policy.h"

namespace crest::cache {

using Header = std::pair<std::string, std::string>;

// One stored response; immutable once inserted, shared with the requests it serves.
struct StoredResponse {
  std::string host;          // lower-case, without port
  std::string path;          // origin-form target, with the query
  std::vector<Header> vary;  // lower-case request header name → the value it had ("" if absent)
  int status = 200;
  std::string reason;
  // Header lines ("Name: value\r\n") as the server sent them, without
  // framing, hop-by-hop headers or Age: for a 200-like answer, and the subset
  // a 304 repeats (Cache-Control, Content-Location, Date, ETag, Expires, Vary).
  std::string head_lines;
  std::string not_modified_lines;
  std::string body;
  std::string etag;           // "" when the server sent none
  std::string last_modified;  // ""
  Nanos stored_at = 0;        // monotonic clock
  int64_t age_at_store = 0;   // seconds, from the server's Age
  Nanos fresh_until = 0;
  Nanos stale_until = 0;   // fresh_until + the route's stale
  bool is_public = false;  // may answer requests with Authorization

  uint64_t bytes() const;
  // Seconds for the Age header at `now`.
  int64_t ageAt(Nanos now) const { return age_at_store + (now - stored_at) / kSecond; }
};

// A request waiting for another request's fill of the same key.
class FillWaiter {
 public:
  virtual ~FillWaiter() = default;
  // The fill ended (stored or not). Any thread, once.
  virtual void onFillDone() = 0;
};

class ResponseCache {
 public:
  // The value of a request header by lower-case name; nullopt when absent.
  using RequestHeaders = std::function<std::optional<std::string_view>(std::string_view)>;

  explicit ResponseCache(uint64_t max_bytes);

  struct Found {
    std::shared_ptr<const StoredResponse> entry;  // null on a miss
    bool fresh = false;                           // false: only within stale_until
  };
  // The variant of host+path that matches the request's Vary values, fresh
  // or still within its stale time; counts as a use for the LRU order.
  Found find(std::string_view host, std::string_view path, const RequestHeaders& request,
             Nanos now);

  // Joins the fill of host+path: true when the caller leads (nobody was
  // filling; it must call endFill), false when `waiter` now waits for the leader.
  bool joinFill(std::string_view host, std::string_view path, std::shared_ptr<FillWaiter> waiter);
  // The leader is done (stored or not): the waiters are told.
  void endFill(std::string_view host, std::string_view path);

  // Stores `response`, replacing the variant with the same Vary values;
  // refused when larger than one shard's share of the bound.
  bool insert(std::shared_ptr<const StoredResponse> response);
  // Removes host's entries whose path equals `path`, or starts with it when
  // it ends in '*'. Returns how many went.
  size_t purge(std::string_view host, std::string_view path);

  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t maxBytes() const { return max_bytes_; }
  // The largest entry insert() accepts: one shard's share of the bound.
  uint64_t maxEntryBytes() const { return shard_bytes_; }
  size_t entries() const;

 private:
  using Lru = std::list<std::shared_ptr<const StoredResponse>>;
  struct Shard {
    mutable std::mutex mu;
    Lru lru;  // most recently used first
    std::unordered_map<std::string, std::vector<Lru::iterator>> variants;  // by key
    std::unordered_map<std::string, std::vector<std::shared_ptr<FillWaiter>>> fills;
    uint64_t bytes = 0;
  };
  static std::string key(std::string_view host, std::string_view path);
  Shard& shardFor(const std::string& key);
  // Takes `it` out of the shard; the caller holds its lock.
  void erase(Shard& shard, Lru::iterator it);

  const uint64_t max_bytes_;
  std::vector<Shard> shards_;
  uint64_t shard_bytes_;
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace crest::cache
