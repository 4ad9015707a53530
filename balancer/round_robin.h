#pragma once
// Smooth weighted round-robin (weights 5:1:1 give a a b a c a a). The schedule
// is computed once at build; workers share one atomic cursor into it, so the
// sequence seen by all workers together honours the weights exactly.

#include <atomic>
#include <vector>

#include "balancer/balancer.h"

namespace crest::balancer {

class RoundRobinBalancer : public Balancer {
 public:
  explicit RoundRobinBalancer(std::vector<Member> members);
  Server* pick(const PickContext& ctx, const TriedSet& tried) const override;

  // The precomputed schedule, one entry per pick (tests).
  const std::vector<Server*>& schedule() const { return schedule_; }

 private:
  std::vector<Server*> schedule_;
  mutable std::atomic<uint64_t> cursor_{0};
};

// The smooth weighted round-robin order for one cycle of the weights, reduced
// by their greatest common divisor. Shared by policies that break ties in turn.
std::vector<Server*> smoothWeightedSchedule(const std::vector<Member>& members);

}  // namespace crest::balancer
