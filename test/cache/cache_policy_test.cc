#include "cache/cache_policy.h"

#include <catch2/catch.hpp>

using namespace crest::cache;

namespace {

constexpr int64_t kNow = 1'700'000'000;  // Unix seconds
constexpr Nanos kTtl = 5 * kSecond;

// A response with `status` and whatever the chained setters add.
struct Facts : ResponseFacts {
  explicit Facts(int s) { status = s; }
  Facts& cc(std::string_view v) {
    cache_control = v;
    return *this;
  }
  Facts& setCookie() {
    has_set_cookie = true;
    return *this;
  }
  Facts& varies(std::string_view v) {
    vary = v;
    return *this;
  }
  Facts& expiresAt(std::string_view e, std::optional<std::string_view> d = std::nullopt) {
    expires = e;
    date = d;
    return *this;
  }
  Facts& aged(int64_t seconds) {
    age = seconds;
    return *this;
  }
};

std::optional<Nanos> lifetime(const ResponseFacts& facts, bool authorization = false) {
  return storableLifetime(facts, authorization, kTtl, kNow);
}

}  // namespace

TEST_CASE("cache-control directives") {
  auto cc = parseCacheControl("public, max-age=60, S-MAXAGE=\"120\", no-transform");
  CHECK(cc.is_public);
  CHECK(cc.max_age == 60);
  CHECK(cc.s_maxage == 120);
  CHECK_FALSE(cc.no_store);
  auto bad = parseCacheControl("max-age=abc,max-age=-1,private,no-store,no-cache");
  CHECK_FALSE(bad.max_age);
  CHECK(bad.is_private);
  CHECK(bad.no_store);
  CHECK(bad.no_cache);
  CHECK(parseCacheControl("max-age=99999999999999999999").max_age == (int64_t{1} << 31));
}

TEST_CASE("http dates in all three forms") {
  CHECK(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
  CHECK(parseHttpDate("Sun Nov  6 08:49:37 1994") == 784111777);
  CHECK_FALSE(parseHttpDate("yesterday"));
  CHECK_FALSE(parseHttpDate("0"));
}

TEST_CASE("storability: one case per rule") {
  // Status codes: only the ones SPEC lists.
  for (int status : {200, 203, 204, 301, 404, 410}) {
    CHECK(lifetime(Facts(status)) == kTtl);
  }
  for (int status : {201, 302, 304, 307, 400, 403, 500, 502, 503}) {
    CHECK_FALSE(lifetime(Facts(status)));
  }
  // Freshness: s-maxage, then max-age, then Expires, else the route's ttl.
  CHECK(lifetime(Facts(200).cc("max-age=60, s-maxage=10")) == 10 * kSecond);
  CHECK(lifetime(Facts(200).cc("max-age=60")) == 60 * kSecond);
  CHECK(lifetime(Facts(200).expiresAt("Tue, 14 Nov 2023 22:14:20 GMT",
                                      "Tue, 14 Nov 2023 22:13:20 GMT")) == 60 * kSecond);
  CHECK(lifetime(Facts(200).cc("max-age=60").expiresAt("0")) == 60 * kSecond);
  CHECK_FALSE(lifetime(Facts(200).expiresAt("0")));  // invalid Expires: already expired
  CHECK(lifetime(Facts(200).cc("max-age=60").aged(50)) == 10 * kSecond);
  CHECK_FALSE(lifetime(Facts(200).cc("max-age=0")));
  // Private answers are never stored.
  CHECK_FALSE(lifetime(Facts(200).setCookie()));
  CHECK_FALSE(lifetime(Facts(200).cc("public, max-age=60").setCookie()));
  CHECK_FALSE(lifetime(Facts(200).cc("private, max-age=60")));
  CHECK_FALSE(lifetime(Facts(200).cc("no-store")));
  CHECK_FALSE(lifetime(Facts(200).cc("no-cache")));
  // An answer to a request with Authorization only when it says public.
  CHECK_FALSE(lifetime(Facts(200).cc("max-age=60"), true));
  CHECK_FALSE(lifetime(Facts(200).cc("s-maxage=60"), true));
  CHECK(lifetime(Facts(200).cc("public, max-age=60"), true) == 60 * kSecond);
  // Vary: * never; other Vary values are stored per variant.
  CHECK_FALSE(lifetime(Facts(200).varies("Accept-Encoding, *")));
  CHECK(lifetime(Facts(200).varies("Accept-Encoding")) == kTtl);
  // No explicit freshness and no route ttl: nothing to store.
  CHECK_FALSE(storableLifetime(Facts(200), false, 0, kNow));
}

TEST_CASE("vary names are lower-cased and trimmed") {
  CHECK(varyNames(" Accept-Encoding ,X-Plan,,") ==
        std::vector<std::string>{"accept-encoding", "x-plan"});
  CHECK(varyNames("").empty());
}

TEST_CASE("if-none-match uses weak comparison") {
  CHECK(etagMatches("\"abc\"", "\"abc\""));
  CHECK(etagMatches("W/\"abc\"", "\"abc\""));
  CHECK(etagMatches("\"x\", \"abc\"", "W/\"abc\""));
  CHECK(etagMatches("*", "\"abc\""));
  CHECK_FALSE(etagMatches("\"abd\"", "\"abc\""));
  CHECK_FALSE(etagMatches("*", ""));
}
