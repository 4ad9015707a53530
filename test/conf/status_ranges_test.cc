#include "conf/status_ranges.h"

#include <catch2/catch.hpp>

using crest::conf::StatusRanges;

TEST_CASE("status ranges accept codes, ranges and classes") {
  auto r = StatusRanges::parse("200-299,304");
  REQUIRE(r);
  CHECK(r->contains(200));
  CHECK(r->contains(299));
  CHECK(r->contains(304));
  CHECK_FALSE(r->contains(301));
  CHECK_FALSE(r->contains(500));

  auto cls = StatusRanges::parse("2xx, 418");
  REQUIRE(cls);
  CHECK(cls->contains(204));
  CHECK(cls->contains(418));
  CHECK_FALSE(cls->contains(300));
}

TEST_CASE("malformed status ranges are refused") {
  for (const char* bad : {"", "abc", "200-", "299-200", "99", "600", "200,,204", "7xx", "2xy"}) {
    INFO(bad);
    CHECK_FALSE(StatusRanges::parse(bad).has_value());
  }
}
