#pragma once
// One token bucket: `rate` tokens a second up to `burst`, one token per
// request. Kept as the time at which the bucket will be full again (the
// generic cell rate algorithm), in integer nanoseconds, so no rounding error
// builds up and a bucket is one number. Time is passed in (a monotonic
// clock), so the arithmetic is tested without a clock. Not thread-safe:
// RateLimiter guards it.

#include <cstdint>

namespace crest::limits {

using Nanos = int64_t;

struct BucketSpec {
  double tokens_per_second = 0;
  uint32_t burst = 0;
};

// What a request learns from its bucket; the numbers feed Retry-After and
// the RateLimit-* response headers.
struct RateDecision {
  bool allowed = true;
  uint32_t limit = 0;          // the bucket size
  uint32_t remaining = 0;      // whole tokens left after this request
  uint32_t reset_seconds = 0;  // until the bucket is full again, rounded up
  uint32_t retry_after = 0;    // seconds until a token is available (0 when allowed)
};

class TokenBucket {
 public:
  // A new bucket is full.
  explicit TokenBucket(Nanos now) : full_at_(now) {}

  RateDecision take(const BucketSpec& spec, Nanos now);
  // True when the bucket has refilled to `burst` by `now`: it is then no
  // different from a new one and may be forgotten.
  bool fullAt(Nanos now) const { return full_at_ <= now; }

 private:
  Nanos full_at_;
};

}  // namespace crest::limits
