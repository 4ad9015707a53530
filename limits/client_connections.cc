#include "limits/client_connections.h"

namespace crest::limits {

bool ClientConnections::take(uint64_t key, uint32_t limit) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  uint32_t& open = shard.open[key];
  if (open >= limit) {
    if (open == 0) shard.open.erase(key);
    return false;
  }
  ++open;
  return true;
}

void ClientConnections::give(uint64_t key) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(key);
  if (it == shard.open.end()) return;
  if (--it->second == 0) shard.open.erase(it);
}

size_t ClientConnections::clients() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.open.size();
  }
  return n;
}

}  // namespace crest::limits
