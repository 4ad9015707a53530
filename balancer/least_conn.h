#pragma once
// The healthy server with the fewest active requests relative to its weight
// (active / weight, compared by cross-multiplication). Ties go round-robin:
// the scan starts one member further on each pick, so equal servers alternate.

#include <atomic>
#include <vector>

#include "balancer/balancer.h"

namespace crest::balancer {

class LeastConnBalancer : public Balancer {
 public:
  explicit LeastConnBalancer(std::vector<Member> members) : members_(std::move(members)) {}
  Server* pick(const PickContext& ctx, const TriedSet& tried) const override;

 private:
  std::vector<Member> members_;
  mutable std::atomic<uint64_t> start_{0};
};

}  // namespace crest::balancer
