#pragma once
// Consistent hashing of the client address over a ring of virtual nodes
// (kMaxPoints for the heaviest server, the others in proportion to weight).
// A client maps to the first point at or after its hash whose server is
// eligible: while its server is healthy it stays there; when that server goes
// down only its clients move to the next points, and they come back when it
// recovers. The ring is built once per configuration and read-only after.

#include <vector>

#include "balancer/balancer.h"

namespace crest::balancer {

class IpHashBalancer : public Balancer {
 public:
  // Enough points that each server's share of the ring is within about 3% of
  // its weight's share; fewer make the spread visibly uneven.
  static constexpr uint32_t kMaxPoints = 1024;

  explicit IpHashBalancer(std::vector<Member> members);
  Server* pick(const PickContext& ctx, const TriedSet& tried) const override;

 private:
  // 8 bytes a point: a ring of 100 servers is 800 KB, and building it is
  // dominated by touching that memory, so points stay small.
  struct Point {
    uint32_t position;
    uint32_t member;  // index into servers_
  };
  static void sortByPosition(std::vector<Point>& points);
  // First ring index whose position is at or after `position`.
  size_t firstAtOrAfter(uint32_t position) const;

  std::vector<Server*> servers_;
  std::vector<Point> ring_;  // sorted by position
  // bucket_start_[b]: first ring index whose position's top 16 bits are >= b,
  // so a lookup searches a handful of points instead of the whole ring.
  std::vector<uint32_t> bucket_start_;
};

}  // namespace crest::balancer
