#include "balancer/round_robin.h"

#include <numeric>

namespace crest::balancer {

std::vector<Server*> smoothWeightedSchedule(const std::vector<Member>& members) {
  uint64_t divisor = 0;
  for (const auto& m : members) divisor = std::gcd(divisor, uint64_t{m.weight});
  if (divisor == 0) return {};
  int64_t total = 0;
  std::vector<int64_t> weights;
  for (const auto& m : members) {
    weights.push_back(static_cast<int64_t>(m.weight / divisor));
    total += weights.back();
  }
  // Nginx's smooth algorithm: every step each member gains its weight, the
  // largest current value is chosen and loses the total.
  std::vector<int64_t> current(members.size(), 0);
  std::vector<Server*> schedule;
  schedule.reserve(static_cast<size_t>(total));
  for (int64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    schedule.push_back(members[best].server);
  }
  return schedule;
}

RoundRobinBalancer::RoundRobinBalancer(std::vector<Member> members)
    : schedule_(smoothWeightedSchedule(members)) {}

Server* RoundRobinBalancer::pick(const PickContext&, const TriedSet& tried) const {
  // Each skipped slot also advances the shared cursor, which is the same as
  // running the schedule with ineligible servers filtered out: the healthy
  // ones keep their relative weights.
  for (size_t attempt = 0; attempt < schedule_.size(); ++attempt) {
    uint64_t slot = cursor_.fetch_add(1, std::memory_order_relaxed);
    Server* s = schedule_[slot % schedule_.size()];
    if (eligible(s, tried)) return s;
  }
  return nullptr;
}

}  // namespace crest::balancer
