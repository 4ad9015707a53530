#include "conf/units.h"

#include <catch2/catch.hpp>

using namespace crest::conf;
using namespace std::chrono_literals;

TEST_CASE("durations take ms, s, m and h") {
  CHECK(parseDuration("250ms") == Duration(250));
  CHECK(parseDuration("2s") == Duration(2000));
  CHECK(parseDuration("1m") == Duration(60000));
  CHECK(parseDuration("1h") == Duration(3600000));
  CHECK(parseDuration("0") == Duration(0));
}

TEST_CASE("malformed durations are refused") {
  for (const char* bad : {"", "s", "10", "1.5s", "-1s", "2 s", "2sec", "99999999999999999999s"}) {
    INFO(bad);
    CHECK_FALSE(parseDuration(bad).has_value());
  }
}

TEST_CASE("fine durations take us, ms and s") {
  CHECK(parseFineDuration("50us") == 50us);
  CHECK(parseFineDuration("2ms") == 2000us);
  CHECK(parseFineDuration("1s") == 1000000us);
  CHECK(parseFineDuration("0") == 0us);
  for (const char* bad : {"", "50", "1m", "1.5ms", "-1us", "50 us", "50usec"}) {
    INFO(bad);
    CHECK_FALSE(parseFineDuration(bad).has_value());
  }
}

TEST_CASE("sizes take bytes and binary units") {
  CHECK(parseSize("0") == 0u);
  CHECK(parseSize("512") == 512u);
  CHECK(parseSize("512B") == 512u);
  CHECK(parseSize("16KiB") == 16u * 1024);
  CHECK(parseSize("1MiB") == 1024u * 1024);
  CHECK(parseSize("2GiB") == 2ull << 30);
  for (const char* bad : {"", "KiB", "16KB", "16kib", "1.5MiB", "-1", "99999999999999999999GiB"}) {
    INFO(bad);
    CHECK_FALSE(parseSize(bad).has_value());
  }
}

TEST_CASE("addresses are host:port or [v6]:port") {
  auto v4 = parseHostPort("10.0.0.1:8080");
  REQUIRE(v4);
  CHECK(v4->host == "10.0.0.1");
  CHECK(v4->port == 8080);
  auto any = parseHostPort("0.0.0.0:80");
  REQUIRE(any);
  CHECK(any->host == "0.0.0.0");
  auto v6 = parseHostPort("[::1]:9901");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9901);
  CHECK(v6->text == "[::1]:9901");
  auto name = parseHostPort("api.internal:443");
  REQUIRE(name);
  CHECK(name->host == "api.internal");
}

TEST_CASE("malformed addresses are refused") {
  for (const char* bad : {"10.0.0.1", ":80", "host:", "host:0", "host:65536", "host:http", "::1:80",
                          "[::1]", "[::1]80", "[]:80", "a b:80", "host:80x"}) {
    INFO(bad);
    CHECK_FALSE(parseHostPort(bad).has_value());
  }
}

TEST_CASE("durations format back as seconds when whole") {
  CHECK(formatDuration(Duration(2000)) == "2s");
  CHECK(formatDuration(Duration(250)) == "250ms");
}
