#include "cache/response_cache.h"

#include <algorithm>

namespace crest::cache {
namespace {

// Below this a cache is one shard: exact LRU matters more than contention.
constexpr uint64_t kBytesPerShard = 4 * 1024 * 1024;
constexpr size_t kMaxShards = 16;

bool varyMatches(const StoredResponse& entry, const ResponseCache::RequestHeaders& request) {
  for (const auto& [name, value] : entry.vary) {
    if (request(name).value_or(std::string_view()) != value) return false;
  }
  return true;
}

}  // namespace

uint64_t StoredResponse::bytes() const {
  uint64_t n = sizeof(StoredResponse) + host.size() + path.size() + reason.size() +
               head_lines.size() + not_modified_lines.size() + body.size() + etag.size() +
               last_modified.size();
  for (const auto& [k, v] : vary) n += k.size() + v.size() + 4;
  return n;
}

ResponseCache::ResponseCache(uint64_t max_bytes)
    : max_bytes_(max_bytes),
      shards_(std::clamp<size_t>(max_bytes / kBytesPerShard, 1, kMaxShards)),
      shard_bytes_(max_bytes / shards_.size()) {}

std::string ResponseCache::key(std::string_view host, std::string_view path) {
  std::string k;
  k.reserve(host.size() + 1 + path.size());
  k.append(host).push_back('\n');  // neither a host nor a target holds a newline
  k.append(path);
  return k;
}

ResponseCache::Shard& ResponseCache::shardFor(const std::string& key) {
  return shards_[std::hash<std::string>()(key) % shards_.size()];
}

ResponseCache::Found ResponseCache::find(std::string_view host, std::string_view path,
                                         const RequestHeaders& request, Nanos now) {
  std::string k = key(host, path);
  Shard& shard = shardFor(k);
  std::lock_guard lock(shard.mu);
  auto found = shard.variants.find(k);
  if (found == shard.variants.end()) return {};
  for (Lru::iterator it : found->second) {
    const auto& entry = *it;
    if (!varyMatches(*entry, request)) continue;
    if (now >= entry->stale_until) {
      erase(shard, it);  // useless even as a stale answer
      return {};
    }
    shard.lru.splice(shard.lru.begin(), shard.lru, it);
    return {entry, now < entry->fresh_until};
  }
  return {};
}

bool ResponseCache::joinFill(std::string_view host, std::string_view path,
                             std::shared_ptr<FillWaiter> waiter) {
  std::string k = key(host, path);
  Shard& shard = shardFor(k);
  std::lock_guard lock(shard.mu);
  auto [it, leader] = shard.fills.try_emplace(std::move(k));
  if (!leader) it->second.push_back(std::move(waiter));
  return leader;
}

void ResponseCache::endFill(std::string_view host, std::string_view path) {
  std::string k = key(host, path);
  Shard& shard = shardFor(k);
  std::vector<std::shared_ptr<FillWaiter>> waiters;
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.fills.find(k);
    if (it == shard.fills.end()) return;
    waiters = std::move(it->second);
    shard.fills.erase(it);
  }
  for (const auto& w : waiters) w->onFillDone();
}

bool ResponseCache::insert(std::shared_ptr<const StoredResponse> response) {
  uint64_t size = response->bytes();
  if (size > shard_bytes_) return false;
  std::string k = key(response->host, response->path);
  Shard& shard = shardFor(k);
  std::lock_guard lock(shard.mu);
  auto& variants = shard.variants[k];
  for (Lru::iterator it : variants) {
    if ((*it)->vary == response->vary) {
      erase(shard, it);
      break;
    }
  }
  while (shard.bytes + size > shard_bytes_ && !shard.lru.empty())
    erase(shard, std::prev(shard.lru.end()));
  shard.lru.push_front(std::move(response));
  shard.variants[k].push_back(shard.lru.begin());
  shard.bytes += size;
  bytes_.fetch_add(size, std::memory_order_relaxed);
  return true;
}

void ResponseCache::erase(Shard& shard, Lru::iterator it) {
  uint64_t size = (*it)->bytes();
  std::string k = key((*it)->host, (*it)->path);
  auto found = shard.variants.find(k);
  if (found != shard.variants.end()) {
    auto& list = found->second;
    list.erase(std::remove(list.begin(), list.end(), it), list.end());
    if (list.empty()) shard.variants.erase(found);
  }
  shard.lru.erase(it);
  shard.bytes -= size;
  bytes_.fetch_sub(size, std::memory_order_relaxed);
}

size_t ResponseCache::purge(std::string_view host, std::string_view path) {
  bool prefix = path.ends_with('*');
  if (prefix) path.remove_suffix(1);
  size_t removed = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (auto it = shard.lru.begin(); it != shard.lru.end();) {
      const auto& e = **it;
      bool match = e.host == host && (prefix ? e.path.starts_with(path) : e.path == path);
      auto next = std::next(it);
      if (match) {
        erase(shard, it);
        ++removed;
      }
      it = next;
    }
  }
  return removed;
}

size_t ResponseCache::entries() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.lru.size();
  }
  return n;
}

}  // namespace crest::cache
