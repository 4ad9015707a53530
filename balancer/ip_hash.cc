#include "balancer/ip_hash.h"

#include <algorithm>
#include <string>

namespace crest::balancer {

IpHashBalancer::IpHashBalancer(std::vector<Member> members) {
  for (const auto& m : members) {
    // Points are derived from the address, not the list position, so adding or
    // removing another server leaves this server's points where they were.
    const uint32_t points = m.weight * kPointsPerWeight;
    for (uint32_t i = 0; i < points; ++i) {
      std::string label = m.server->address + "#" + std::to_string(i);
      ring_.push_back(Point{hashBytes(label.data(), label.size()), m.server});
    }
  }
  std::sort(ring_.begin(), ring_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.server->address < b.server->address;
  });
}

Server* IpHashBalancer::pick(const PickContext& ctx, const TriedSet& tried) const {
  if (ring_.empty()) return nullptr;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), ctx.client_hash,
                             [](const Point& p, uint64_t h) { return p.hash < h; });
  size_t index = static_cast<size_t>(it - ring_.begin());
  for (size_t k = 0; k < ring_.size(); ++k) {
    Server* s = ring_[(index + k) % ring_.size()].server;
    if (eligible(s, tried)) return s;
  }
  return nullptr;
}

}  // namespace crest::balancer
