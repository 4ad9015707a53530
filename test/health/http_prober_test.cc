#include "health/http_prober.h"

#include <catch2/catch.hpp>

using crest::health::parseStatusLine;

TEST_CASE("prober: status lines") {
  CHECK(parseStatusLine("HTTP/1.1 200 OK") == 200);
  CHECK(parseStatusLine("HTTP/1.0 503 Service Unavailable") == 503);
  CHECK(parseStatusLine("HTTP/1.1 204") == 204);
  CHECK(parseStatusLine("HTTP/1.1 20 OK") == 0);
  CHECK(parseStatusLine("HTTP/2 200") == 0);
  CHECK(parseStatusLine("SSH-2.0-OpenSSH") == 0);
  CHECK(parseStatusLine("HTTP/1.1 999 Nope") == 0);
}
