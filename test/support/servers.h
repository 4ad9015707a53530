#pragma once
// Fixtures for balancer tests: named servers and their members.

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "balancer/balancer.h"

namespace crest::test {

class ServerSet {
 public:
  // Adds a server called `name` with `weight`.
  balancer::Server* add(const std::string& name, uint32_t weight = 1) {
    servers_.emplace_back(name);
    members_.push_back({&servers_.back(), weight});
    return &servers_.back();
  }
  const std::vector<balancer::Member>& members() const { return members_; }
  balancer::Server* get(const std::string& name) {
    for (auto& s : servers_) {
      if (s.address == name) return &s;
    }
    return nullptr;
  }

 private:
  std::deque<balancer::Server> servers_;  // stable addresses
  std::vector<balancer::Member> members_;
};

// The names of `n` consecutive picks.
inline std::string sequence(const balancer::Balancer& b, int n, uint64_t client = 0) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    balancer::Server* s = b.pick(balancer::PickContext{client}, balancer::TriedSet());
    out += s ? s->address : "-";
  }
  return out;
}

}  // namespace crest::test
