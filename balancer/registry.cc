#include <cstring>

#include "balancer/balancer.h"
#include "balancer/ip_hash.h"
#include "balancer/least_conn.h"
#include "balancer/round_robin.h"

namespace crest::balancer {
namespace {

using Factory = std::unique_ptr<Balancer> (*)(std::vector<Member>);

template <typename T>
std::unique_ptr<Balancer> make(std::vector<Member> members) {
  return std::make_unique<T>(std::move(members));
}

struct Entry {
  std::string_view name;
  Factory factory;
};

constexpr Entry kRegistry[] = {
    {"round_robin", &make<RoundRobinBalancer>},
    {"least_conn", &make<LeastConnBalancer>},
    {"ip_hash", &make<IpHashBalancer>},
};

}  // namespace

std::unique_ptr<Balancer> makeBalancer(std::string_view name, std::vector<Member> members) {
  for (const auto& e : kRegistry) {
    if (e.name == name) return e.factory(std::move(members));
  }
  return nullptr;
}

uint64_t hashBytes(const void* data, size_t len) {
  // FNV-1a, then a murmur-style finalizer so nearby inputs (consecutive IPs) spread.
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace crest::balancer
