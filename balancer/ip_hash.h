#pragma once
// Consistent hashing of the client address over a ring of virtual nodes
// (kPointsPerWeight per unit of weight). A client maps to the first point at
// or after its hash whose server is eligible: while its server is healthy it
// stays there; when that server goes down only its clients move to the next
// points, and they come back when it recovers. The ring is built once.

#include <vector>

#include "balancer/balancer.h"

namespace crest::balancer {

class IpHashBalancer : public Balancer {
 public:
  static constexpr uint32_t kPointsPerWeight = 160;

  explicit IpHashBalancer(std::vector<Member> members);
  Server* pick(const PickContext& ctx, const TriedSet& tried) const override;

 private:
  struct Point {
    uint64_t hash;
    Server* server;
  };
  std::vector<Point> ring_;  // sorted by hash
};

}  // namespace crest::balancer
