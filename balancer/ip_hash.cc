#include "balancer/ip_hash.h"

#include <algorithm>

namespace crest::balancer {
namespace {

// splitmix64: spreads consecutive inputs over the whole 64-bit range.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void IpHashBalancer::sortByPosition(std::vector<Point>& points) {
  // Stable LSD radix sort, 8 bits a pass: several times faster than comparison
  // sorting for rings of 100,000 points.
  std::vector<Point> scratch(points.size());
  for (int shift = 0; shift < 32; shift += 8) {
    size_t counts[257] = {0};
    for (const Point& p : points) ++counts[((p.position >> shift) & 0xff) + 1];
    for (int i = 0; i < 256; ++i) counts[i + 1] += counts[i];
    for (const Point& p : points) scratch[counts[(p.position >> shift) & 0xff]++] = p;
    points.swap(scratch);
  }
}

IpHashBalancer::IpHashBalancer(std::vector<Member> members) {
  uint32_t max_weight = 1;
  for (const auto& m : members) max_weight = std::max(max_weight, m.weight);
  ring_.reserve(members.size() * kMaxPoints);
  for (const auto& m : members) {
    // Points are derived from the address, not the list position, so adding or
    // removing another server leaves this server's points where they were.
    const uint64_t seed = hashBytes(m.server->address.data(), m.server->address.size());
    const uint32_t points =
        std::max<uint32_t>(1, static_cast<uint32_t>(uint64_t{kMaxPoints} * m.weight / max_weight));
    const auto index = static_cast<uint32_t>(servers_.size());
    servers_.push_back(m.server);
    for (uint32_t i = 0; i < points; ++i) {
      ring_.push_back(Point{static_cast<uint32_t>(mix(seed + i) >> 32), index});
    }
  }
  sortByPosition(ring_);
  bucket_start_.resize((1u << 16) + 1);
  size_t index = 0;
  for (uint32_t bucket = 0; bucket <= (1u << 16); ++bucket) {
    while (index < ring_.size() && (ring_[index].position >> 16) < bucket) ++index;
    bucket_start_[bucket] = static_cast<uint32_t>(index);
  }
}

size_t IpHashBalancer::firstAtOrAfter(uint32_t position) const {
  auto begin = ring_.begin() + bucket_start_[position >> 16];
  auto end = ring_.begin() + bucket_start_[(position >> 16) + 1];
  auto it = std::lower_bound(begin, end, position,
                             [](const Point& p, uint32_t h) { return p.position < h; });
  return static_cast<size_t>(it - ring_.begin());
}

Server* IpHashBalancer::pick(const PickContext& ctx, const TriedSet& tried) const {
  if (ring_.empty()) return nullptr;
  const auto position = static_cast<uint32_t>(ctx.client_hash >> 32);
  size_t index = firstAtOrAfter(position);
  for (size_t k = 0; k < ring_.size(); ++k) {
    Server* s = servers_[ring_[(index + k) % ring_.size()].member];
    if (eligible(s, tried)) return s;
  }
  return nullptr;
}

}  // namespace crest::balancer
