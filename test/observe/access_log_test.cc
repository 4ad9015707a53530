#include "observe/access_log.h"

#include <catch2/catch.hpp>

using namespace crest::observe;
using namespace std::chrono_literals;

TEST_CASE("access log: one line with every field") {
  AccessRecord r;
  r.client = "203.0.113.9";
  r.listener = "public";
  r.method = "GET";
  r.target = "/v2/users?q=1";
  r.status = 200;
  r.bytes = 5120;
  r.total = 12ms;
  r.pool = "api";
  r.upstream = "10.0.0.11:8080";
  r.upstream_time = 10500us;
  r.request_id = "abc";
  std::string line;
  formatAccessRecord(r, "2026-11-27T10:00:00.123Z", line);
  CHECK(line ==
        "2026-11-27T10:00:00.123Z 203.0.113.9 public \"GET /v2/users?q=1 HTTP/1.1\" 200 5120 0.012 "
        "pool=api upstream=10.0.0.11:8080 upstream_time=0.011 request_id=abc cause=-\n");
}

TEST_CASE("access log: requests that reached no server and hostile targets") {
  AccessRecord r;
  r.client = "::1";
  r.listener = "public";
  r.method = "GET";
  r.target = "/a\"b\\c\x01";
  r.version_minor = 0;
  r.status = 404;
  r.bytes = 20;
  std::string line;
  formatAccessRecord(r, "T", line);
  CHECK(line ==
        "T ::1 public \"GET /a\\\"b\\\\c\\x01 HTTP/1.0\" 404 20 0.000 pool=- upstream=- "
        "upstream_time=- request_id=- cause=-\n");
}

TEST_CASE("access log: the cause of a local answer ends the line") {
  AccessRecord r;
  r.client = "192.0.2.1";
  r.listener = "public";
  r.method = "GET";
  r.target = "/";
  r.status = 503;
  r.pool = "api";
  r.cause = "no_healthy_server";
  std::string line;
  formatAccessRecord(r, "T", line);
  CHECK(line ==
        "T 192.0.2.1 public \"GET / HTTP/1.1\" 503 0 0.000 pool=api upstream=- upstream_time=- "
        "request_id=- cause=no_healthy_server\n");
}
