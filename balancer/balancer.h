#pragma once
// The balancing interface. A Balancer is built once per configuration load
// from a pool's members and is then shared read-only by all workers (any state
// it keeps across picks is atomic), so pick() may be called from any thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "balancer/server.h"

namespace crest::balancer {

struct PickContext {
  uint64_t client_hash = 0;  // hash of the client's address (ip_hash)
};

// Servers already tried for one request, so a retry goes elsewhere.
class TriedSet {
 public:
  static constexpr size_t kCapacity = 16;

  bool contains(const Server* s) const {
    for (size_t i = 0; i < size_; ++i) {
      if (servers_[i] == s) return true;
    }
    return false;
  }
  void add(const Server* s) {
    if (size_ < kCapacity && !contains(s)) servers_[size_++] = s;
  }
  size_t size() const { return size_; }

 private:
  std::array<const Server*, kCapacity> servers_{};
  size_t size_ = 0;
};

inline bool eligible(const Server* s, const TriedSet& tried) {
  return s->healthy.load(std::memory_order_relaxed) && !tried.contains(s);
}

class Balancer {
 public:
  virtual ~Balancer() = default;
  // A healthy server not in `tried`, or nullptr when there is none.
  virtual Server* pick(const PickContext& ctx, const TriedSet& tried) const = 0;
};

// Creates the policy registered under `name` ("round_robin", "least_conn",
// "ip_hash"); nullptr for an unknown name.
std::unique_ptr<Balancer> makeBalancer(std::string_view name, std::vector<Member> members);

// 64-bit hash of arbitrary bytes (client addresses, cookie values).
uint64_t hashBytes(const void* data, size_t len);

}  // namespace crest::balancer
