#include "limits/token_bucket.h"

#include <catch2/catch.hpp>

using crest::limits::BucketSpec;
using crest::limits::Nanos;
using crest::limits::TokenBucket;

namespace {
constexpr Nanos kMs = 1'000'000;
constexpr Nanos kSecond = 1000 * kMs;
}  // namespace

TEST_CASE("a new bucket admits its burst at once, then refuses") {
  BucketSpec spec{100, 20};
  TokenBucket bucket(0);
  for (int i = 0; i < 20; ++i) {
    auto d = bucket.take(spec, 0);
    REQUIRE(d.allowed);
    CHECK(d.remaining == static_cast<uint32_t>(19 - i));
    CHECK(d.limit == 20);
  }
  auto refused = bucket.take(spec, 0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.remaining == 0);
  CHECK(refused.retry_after == 1);    // 10 ms to the next token, rounded up to a second
  CHECK(refused.reset_seconds == 1);  // 20 tokens at 100/s: 0.2 s
}

TEST_CASE("tokens come back at the configured rate") {
  BucketSpec spec{100, 20};
  TokenBucket bucket(0);
  for (int i = 0; i < 20; ++i) bucket.take(spec, 0);
  // Over one simulated second at 1 ms steps, 100 requests get through (one per 10 ms).
  int admitted = 0;
  for (Nanos t = kMs; t <= kSecond; t += kMs) admitted += bucket.take(spec, t).allowed ? 1 : 0;
  CHECK(admitted == 100);
}

TEST_CASE("a slow rate tells the client how long to wait") {
  BucketSpec spec{1.0 / 60, 1};  // one a minute
  TokenBucket bucket(0);
  REQUIRE(bucket.take(spec, 0).allowed);
  auto d = bucket.take(spec, 15 * kSecond);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 45);
  CHECK(d.reset_seconds == 45);
}

TEST_CASE("a bucket never holds more than its burst, and says when it is full again") {
  BucketSpec spec{10, 5};
  TokenBucket bucket(0);
  CHECK(bucket.fullAt(0));
  bucket.take(spec, 0);
  CHECK_FALSE(bucket.fullAt(50 * kMs));
  CHECK(bucket.fullAt(100 * kMs));
  // An hour idle still leaves only 5 tokens.
  for (int i = 0; i < 5; ++i) REQUIRE(bucket.take(spec, 3600 * kSecond).allowed);
  CHECK_FALSE(bucket.take(spec, 3600 * kSecond).allowed);
}

TEST_CASE("time going backwards adds no tokens") {
  BucketSpec spec{10, 1};
  TokenBucket bucket(kSecond);
  REQUIRE(bucket.take(spec, kSecond).allowed);
  CHECK_FALSE(bucket.take(spec, 0).allowed);
}
