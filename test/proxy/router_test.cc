#include "proxy/router.h"

#include <catch2/catch.hpp>

using namespace crest;
using namespace crest::proxy;
using crest::http::MessageHead;

namespace {

conf::Route route(std::string host, std::string prefix,
                  std::vector<conf::HeaderMatch> headers = {}) {
  conf::Route r;
  r.match.host = std::move(host);
  r.match.path_prefix = std::move(prefix);
  r.match.headers = std::move(headers);
  return r;
}

}  // namespace

TEST_CASE("router: first match wins, catch-all last, no match is -1") {
  std::vector<conf::Route> routes = {route("api.example.com", "/v2/"), route("", "/static/"),
                                     route("", "")};
  Router router(routes);
  MessageHead head;
  CHECK(router.match("api.example.com", "/v2/users", head) == 0);
  CHECK(router.match("api.example.com", "/v1/users", head) == 2);
  CHECK(router.match("www.example.com", "/static/a.css", head) == 1);
  std::vector<conf::Route> no_catch_all = {route("api.example.com", "")};
  CHECK(Router(no_catch_all).match("other.example.com", "/", head) == -1);
}

TEST_CASE("router: wildcard hosts match subdomains only") {
  CHECK(hostMatches("*.example.com", "a.example.com"));
  CHECK(hostMatches("*.example.com", "a.b.example.com"));
  CHECK_FALSE(hostMatches("*.example.com", "example.com"));
  CHECK_FALSE(hostMatches("*.example.com", "badexample.com"));
  CHECK(hostMatches("example.com", "example.com"));
  CHECK_FALSE(hostMatches("example.com", "www.example.com"));
}

TEST_CASE("router: hosts are compared case-insensitively without the port") {
  CHECK(hostWithoutPort("API.Example.COM:8443") == "api.example.com");
  CHECK(hostWithoutPort("example.com.") == "example.com");
  CHECK(hostWithoutPort("[::1]:8080") == "[::1]");
  CHECK(hostWithoutPort("[::1]") == "[::1]");
}

TEST_CASE("router: header matches are exact, names case-insensitive") {
  std::vector<conf::Route> routes = {route("", "/api/", {{"x-plan", "premium"}}),
                                     route("", "/api/")};
  Router router(routes);
  MessageHead premium;
  premium.headers = {{"X-Plan", "premium"}};
  MessageHead other;
  other.headers = {{"X-Plan", "Premium"}};
  CHECK(router.match("h", "/api/x", premium) == 0);
  CHECK(router.match("h", "/api/x", other) == 1);
  CHECK(router.match("h", "/api/x", MessageHead{}) == 1);
}
