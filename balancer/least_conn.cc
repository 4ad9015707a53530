#include "balancer/least_conn.h"

namespace crest::balancer {

Server* LeastConnBalancer::pick(const PickContext&, const TriedSet& tried) const {
  const size_t n = members_.size();
  if (n == 0) return nullptr;
  const size_t start = start_.fetch_add(1, std::memory_order_relaxed) % n;
  const Member* best = nullptr;
  int64_t best_active = 0;
  for (size_t k = 0; k < n; ++k) {
    const Member& m = members_[(start + k) % n];
    if (!eligible(m.server, tried)) continue;
    int64_t active = m.server->active_requests.load(std::memory_order_relaxed);
    // active/weight < best_active/best_weight, without division.
    if (best == nullptr || active * int64_t{best->weight} < best_active * int64_t{m.weight}) {
      best = &m;
      best_active = active;
    }
  }
  return best ? best->server : nullptr;
}

}  // namespace crest::balancer
