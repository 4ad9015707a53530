#include "io/loop_clock.h"

#include <catch2/catch.hpp>

using crest::io::LoopClock;

TEST_CASE("one loop turn reads the clock once; the next turn reads it again") {
  LoopClock clock;
  const auto first = clock.now();
  // The steady clock moves on, but the turn's time does not.
  while (LoopClock::Clock::now() == first) {
  }
  CHECK(clock.now() == first);
  clock.nextTurn();
  CHECK(clock.now() > first);
}
