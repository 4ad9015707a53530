#include "limits/rate_limiter.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using crest::limits::BucketSpec;
using crest::limits::Nanos;
using crest::limits::RateLimiter;

namespace {
constexpr Nanos kMs = 1'000'000;
}  // namespace

TEST_CASE("each key has its own bucket") {
  RateLimiter limiter(BucketSpec{1, 2});
  CHECK(limiter.take(1, 0).allowed);
  CHECK(limiter.take(1, 0).allowed);
  CHECK_FALSE(limiter.take(1, 0).allowed);
  // Another client is unaffected.
  CHECK(limiter.take(2, 0).allowed);
  CHECK(limiter.size() == 2);
}

TEST_CASE("a million distinct keys stay within the key cap") {
  RateLimiter limiter(BucketSpec{1, 10}, 4096);
  for (uint64_t k = 0; k < 1'000'000; ++k) {
    // Keys spread like hashes do; all arrive within one simulated second,
    // so none has refilled and the cap has to do the work.
    limiter.take(k * 0x9E3779B97F4A7C15ull, static_cast<Nanos>(k));
  }
  CHECK(limiter.size() <= limiter.maxKeys());
  CHECK(limiter.maxKeys() == 4096);
  CHECK(limiter.size() > 4000);
}

TEST_CASE("refilled buckets are forgotten as new keys arrive") {
  RateLimiter limiter(BucketSpec{100, 5}, 64 * 16);
  for (uint64_t k = 0; k < 500; ++k) limiter.take(k * 0x9E3779B97F4A7C15ull, 0);
  REQUIRE(limiter.size() == 500);
  // 50 ms later every bucket is full again (1 token used, 100/s): the next
  // keys sweep the old ones out.
  for (uint64_t k = 1000; k < 1500; ++k) limiter.take(k * 0x9E3779B97F4A7C15ull, 50 * kMs);
  CHECK(limiter.size() < 600);
}

TEST_CASE("a forgotten key starts again with a full bucket") {
  RateLimiter limiter(BucketSpec{1, 1}, 64);  // one key per shard
  uint64_t a = 0;
  uint64_t b = 64;  // same shard as a
  REQUIRE(limiter.take(a, 0).allowed);
  REQUIRE_FALSE(limiter.take(a, 0).allowed);
  REQUIRE(limiter.take(b, 0).allowed);  // pushes a out
  CHECK(limiter.take(a, 0).allowed);
}

TEST_CASE("workers share one bucket per key") {
  RateLimiter limiter(BucketSpec{1, 1000});
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) admitted += limiter.take(42, 0).allowed ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(admitted == 1000);
}
