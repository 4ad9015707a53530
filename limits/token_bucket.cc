#include "limits/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace crest::limits {
namespace {

constexpr Nanos kSecond = 1'000'000'000;

uint32_t ceilSeconds(Nanos d) {
  return d <= 0 ? 0 : static_cast<uint32_t>((d + kSecond - 1) / kSecond);
}

}  // namespace

RateDecision TokenBucket::take(const BucketSpec& spec, Nanos now) {
  // Each token is worth `interval` of refill time; the bucket holds `burst` of them.
  const Nanos interval = std::max<Nanos>(1, std::llround(1e9 / spec.tokens_per_second));
  const Nanos capacity = interval * spec.burst;
  const Nanos start = std::max(full_at_, now);
  RateDecision d;
  d.limit = spec.burst;
  d.allowed = start + interval - now <= capacity;
  if (d.allowed) {
    full_at_ = start + interval;
  } else {
    // A refused client may come back when one whole token has been earned.
    d.retry_after = std::max<uint32_t>(1, ceilSeconds(start + interval - now - capacity));
  }
  d.remaining = static_cast<uint32_t>((capacity - std::max<Nanos>(0, full_at_ - now)) / interval);
  d.reset_seconds = ceilSeconds(full_at_ - now);
  return d;
}

}  // namespace crest::limits
