#include "health/health_tracker.h"

#include <catch2/catch.hpp>

using crest::health::HealthTracker;

TEST_CASE("health: servers start healthy") {
  CHECK(HealthTracker(2, 3).healthy());
}

TEST_CASE("health: unhealthy_threshold failures in a row take a server down") {
  HealthTracker t(2, 3);
  CHECK_FALSE(t.observe(false));
  CHECK_FALSE(t.observe(false));
  CHECK(t.healthy());
  CHECK(t.observe(false));
  CHECK_FALSE(t.healthy());
  CHECK_FALSE(t.observe(false));  // already down: no flip
}

TEST_CASE("health: a pass resets the failure streak") {
  HealthTracker t(2, 3);
  t.observe(false);
  t.observe(false);
  CHECK_FALSE(t.observe(true));
  CHECK_FALSE(t.observe(false));
  CHECK_FALSE(t.observe(false));
  CHECK(t.healthy());
  CHECK(t.observe(false));
}

TEST_CASE("health: healthy_threshold passes in a row bring it back") {
  HealthTracker t(2, 1);
  CHECK(t.observe(false));
  CHECK_FALSE(t.observe(true));
  CHECK_FALSE(t.observe(false));  // streak broken
  CHECK_FALSE(t.observe(true));
  CHECK(t.observe(true));
  CHECK(t.healthy());
}

TEST_CASE("health: forced down flips once, then needs the passes") {
  HealthTracker t(2, 3);
  CHECK(t.forceDown());
  CHECK_FALSE(t.forceDown());
  CHECK_FALSE(t.observe(true));
  CHECK(t.observe(true));
}

TEST_CASE("health: thresholds of one flip on every change") {
  HealthTracker t(1, 1);
  CHECK(t.observe(false));
  CHECK(t.observe(true));
  CHECK_FALSE(t.observe(true));
}
