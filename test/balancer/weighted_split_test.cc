#include "balancer/weighted_split.h"

#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "balancer/balancer.h"

using crest::balancer::hashBytes;
using crest::balancer::WeightedSplit;

namespace {

uint64_t keyOf(uint32_t client) {
  return hashBytes(&client, sizeof client);
}

}  // namespace

TEST_CASE("split: weights are honoured within one point over 10,000 picks") {
  WeightedSplit split({95, 5});
  std::mt19937_64 random(42);
  int canary = 0;
  for (int i = 0; i < 10000; ++i) canary += split.pick(random()) == 1;
  CHECK(canary == Approx(500).margin(100));

  WeightedSplit three({50, 30, 20});
  std::vector<int> counts(3);
  for (uint32_t i = 0; i < 10000; ++i) counts[three.pick(keyOf(i))]++;
  CHECK(counts[0] == Approx(5000).margin(100));
  CHECK(counts[1] == Approx(3000).margin(100));
  CHECK(counts[2] == Approx(2000).margin(100));
}

TEST_CASE("split: the same key always gets the same target") {
  WeightedSplit split({90, 10});
  for (uint32_t i = 0; i < 1000; ++i) CHECK(split.pick(keyOf(i)) == split.pick(keyOf(i)));
}

TEST_CASE("split: a growing canary keeps every client it had") {
  WeightedSplit five({95, 5});
  WeightedSplit ten({90, 10});
  int moved_in = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    if (five.pick(keyOf(i)) == 1) REQUIRE(ten.pick(keyOf(i)) == 1);
    moved_in += five.pick(keyOf(i)) == 0 && ten.pick(keyOf(i)) == 1;
  }
  // Only the share that must move moves: about 5% of clients.
  CHECK(moved_in == Approx(500).margin(100));
}

TEST_CASE("split: weight 0 is never chosen and scaled weights choose alike") {
  WeightedSplit drained({0, 1});
  for (uint32_t i = 0; i < 1000; ++i) CHECK(drained.pick(keyOf(i)) == 1);
  WeightedSplit small({3, 1});
  WeightedSplit big({300, 100});
  for (uint32_t i = 0; i < 1000; ++i) CHECK(small.pick(keyOf(i)) == big.pick(keyOf(i)));
  CHECK(drained.pick(0) == 1);
  CHECK(drained.pick(~uint64_t{0}) == 1);
}

TEST_CASE("split: a target that cannot serve hands its keys to the others") {
  WeightedSplit split({90, 10});
  auto canary_down = [](size_t i) { return i != 1; };
  for (uint32_t i = 0; i < 1000; ++i) CHECK(split.pickUsable(keyOf(i), canary_down) == 0);
  auto none = [](size_t) { return false; };
  CHECK(split.pickUsable(keyOf(1), none) == 2);
  WeightedSplit three({1, 1, 1});
  std::vector<int> counts(3);
  auto first_down = [](size_t i) { return i != 0; };
  for (uint32_t i = 0; i < 9000; ++i) counts[three.pickUsable(keyOf(i), first_down)]++;
  CHECK(counts[0] == 0);
  CHECK(counts[1] == Approx(4500).margin(200));
  // Keys already on a usable target stay there.
  for (uint32_t i = 0; i < 1000; ++i) {
    if (three.pick(keyOf(i)) != 0)
      CHECK(three.pickUsable(keyOf(i), first_down) == three.pick(keyOf(i)));
  }
}
