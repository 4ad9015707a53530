#include "http/http_message.h"

#include <catch2/catch.hpp>

using namespace crest::http;

TEST_CASE("message: the names the proxy acts on are known in any case, others are not") {
  CHECK(classifyHeaderName("Host") == HeaderName::Host);
  CHECK(classifyHeaderName("CONTENT-LENGTH") == HeaderName::ContentLength);
  CHECK(classifyHeaderName("transfer-encoding") == HeaderName::TransferEncoding);
  CHECK(classifyHeaderName("Connection") == HeaderName::Connection);
  CHECK(classifyHeaderName("Keep-Alive") == HeaderName::KeepAlive);
  CHECK(classifyHeaderName("Proxy-Connection") == HeaderName::ProxyConnection);
  CHECK(classifyHeaderName("TE") == HeaderName::TE);
  CHECK(classifyHeaderName("Trailer") == HeaderName::Trailer);
  CHECK(classifyHeaderName("Upgrade") == HeaderName::Upgrade);
  CHECK(classifyHeaderName("Expect") == HeaderName::Expect);
  CHECK(classifyHeaderName("X-Forwarded-For") == HeaderName::XForwardedFor);
  CHECK(classifyHeaderName("X-Forwarded-Host") == HeaderName::XForwardedHost);
  CHECK(classifyHeaderName("X-Forwarded-Proto") == HeaderName::XForwardedProto);
  CHECK(classifyHeaderName("X-Request-Id") == HeaderName::XRequestId);
  // Same lengths and first letters as known names, one letter apart.
  for (const char* other :
       {"Hosts", "Hast", "te ", "Ta", "Upgrades", "Trailex", "Connectiox", "Keep-Alivx",
        "Proxy-Connectiox", "X-Forwarded-Hosx", "X-Forwarded-Prox", "transfer-encodinx",
        "Content-Lengtx", "Expecx", "X-Request-Ix", "X-Forwarded-Fox", "", "Accept"}) {
    INFO(other);
    CHECK(classifyHeaderName(other) == HeaderName::Other);
  }
}

TEST_CASE("message: a field made from strings knows its name") {
  HeaderField f{"content-Length", "3"};
  CHECK(f.id == HeaderName::ContentLength);
  MessageHead head;
  head.headers = {{"Accept", "*/*"}, {"HOST", "a"}, {"Host", "b"}};
  REQUIRE(head.find(HeaderName::Host) != nullptr);
  CHECK(*head.find(HeaderName::Host) == "a");
  CHECK(head.find(HeaderName::Expect) == nullptr);
}

TEST_CASE("message: a cleared header list reuses its fields' buffers, empty") {
  HeaderList list;
  HeaderField& first = list.add();
  first.name = "X-Long-Name-That-Does-Not-Fit-In-Place";
  first.value = std::string(100, 'v');
  first.id = HeaderName::Host;
  const char* name_buffer = first.name.data();
  list.clear();
  CHECK(list.empty());
  CHECK(list.begin() == list.end());
  HeaderField& again = list.add();
  CHECK(list.size() == 1);
  CHECK(again.name.empty());
  CHECK(again.value.empty());
  CHECK(again.id == HeaderName::Other);
  again.name = "X-Short";
  CHECK(again.name.data() == name_buffer);
}

TEST_CASE("message: names compare without case, byte for byte otherwise") {
  CHECK(equalsIgnoreCase("Content-Length", "content-length"));
  CHECK(equalsIgnoreCase("X-FORWARDED-PROTO", "x-forwarded-proto"));
  CHECK(equalsIgnoreCase("", ""));
  CHECK_FALSE(equalsIgnoreCase("host", "hosts"));
  // Every pair of bytes, at each position of short and long names (the long
  // ones compare eight bytes at a time, the last word overlapping).
  for (size_t length : {1, 7, 8, 9, 16, 17}) {
    for (size_t at = 0; at < length; ++at) {
      for (int x = 0; x < 256; ++x) {
        for (int y = 0; y < 256; ++y) {
          std::string a(length, 'k'), b(length, 'k');
          a[at] = static_cast<char>(x);
          b[at] = static_cast<char>(y);
          auto lower = [](int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; };
          if (equalsIgnoreCase(a, b) != (lower(x) == lower(y))) {
            FAIL("length " << length << " at " << at << ": " << x << " vs " << y);
          }
        }
      }
    }
  }
}

TEST_CASE("message: hasUnderscore finds '_' at every position of every length up to 24") {
  for (size_t n = 0; n <= 24; ++n) {
    std::string name(n, 'a');
    CHECK_FALSE(hasUnderscore(name));
    for (size_t i = 0; i < n; ++i) {
      std::string with = name;
      with[i] = '_';
      INFO(with);
      CHECK(hasUnderscore(with));
    }
  }
  // Bytes next to '_' (0x5f) in value, and high bytes, are not it.
  CHECK_FALSE(hasUnderscore("^^^^`````\x7f\xdf\xde-"));
}
