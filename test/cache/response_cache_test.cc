#include "cache/response_cache.h"

#include <catch2/catch.hpp>
#include <map>

using namespace crest::cache;

namespace {

struct Request {
  std::map<std::string, std::string> headers;
  ResponseCache::RequestHeaders lookup() const {
    return [this](std::string_view name) -> std::optional<std::string_view> {
      auto it = headers.find(std::string(name));
      if (it == headers.end()) return std::nullopt;
      return std::string_view(it->second);
    };
  }
};

std::shared_ptr<StoredResponse> response(std::string path, std::string body,
                                         Nanos fresh_until = 10 * kSecond,
                                         Nanos stale_until = 20 * kSecond) {
  auto r = std::make_shared<StoredResponse>();
  r->host = "example.com";
  r->path = std::move(path);
  r->body = std::move(body);
  r->fresh_until = fresh_until;
  r->stale_until = stale_until;
  return r;
}

struct CountingWaiter : FillWaiter {
  int told = 0;
  void onFillDone() override { ++told; }
};

}  // namespace

TEST_CASE("an entry is fresh, then stale, then gone") {
  ResponseCache cache(1 << 20);
  Request req;
  REQUIRE(cache.insert(response("/a", "hello")));
  auto hit = cache.find("example.com", "/a", req.lookup(), 5 * kSecond);
  REQUIRE(hit.entry);
  CHECK(hit.fresh);
  CHECK(hit.entry->body == "hello");
  auto stale = cache.find("example.com", "/a", req.lookup(), 15 * kSecond);
  REQUIRE(stale.entry);
  CHECK_FALSE(stale.fresh);
  CHECK_FALSE(cache.find("example.com", "/a", req.lookup(), 20 * kSecond).entry);
  CHECK(cache.entries() == 0);
  CHECK(cache.bytes() == 0);
  CHECK_FALSE(cache.find("other.com", "/a", req.lookup(), 0).entry);
}

TEST_CASE("vary keeps one variant per request value") {
  ResponseCache cache(1 << 20);
  auto gzip = response("/v", "gzipped");
  gzip->vary = {{"accept-encoding", "gzip"}};
  auto plain = response("/v", "plain");
  plain->vary = {{"accept-encoding", ""}};
  cache.insert(gzip);
  cache.insert(plain);
  Request wants_gzip{{{"accept-encoding", "gzip"}}};
  Request wants_nothing;
  Request wants_br{{{"accept-encoding", "br"}}};
  CHECK(cache.find("example.com", "/v", wants_gzip.lookup(), 0).entry->body == "gzipped");
  CHECK(cache.find("example.com", "/v", wants_nothing.lookup(), 0).entry->body == "plain");
  CHECK_FALSE(cache.find("example.com", "/v", wants_br.lookup(), 0).entry);
  // The same variant again replaces the old one.
  auto gzip2 = response("/v", "gzipped again");
  gzip2->vary = {{"accept-encoding", "gzip"}};
  cache.insert(gzip2);
  CHECK(cache.entries() == 2);
  CHECK(cache.find("example.com", "/v", wants_gzip.lookup(), 0).entry->body == "gzipped again");
}

TEST_CASE("the least recently used entries go when the bound is reached") {
  std::string body(1000, 'x');
  uint64_t one = response("/0", body)->bytes();
  ResponseCache cache(one * 3 + one / 2);  // room for three
  Request req;
  cache.insert(response("/1", body));
  cache.insert(response("/2", body));
  cache.insert(response("/3", body));
  REQUIRE(cache.find("example.com", "/1", req.lookup(), 0).entry);  // /1 is now the most recent
  cache.insert(response("/4", body));                               // evicts /2
  CHECK(cache.find("example.com", "/1", req.lookup(), 0).entry);
  CHECK_FALSE(cache.find("example.com", "/2", req.lookup(), 0).entry);
  CHECK(cache.find("example.com", "/3", req.lookup(), 0).entry);
  CHECK(cache.find("example.com", "/4", req.lookup(), 0).entry);
  CHECK(cache.bytes() <= cache.maxBytes());
  CHECK(cache.bytes() == 3 * one);
  // An entry larger than the whole cache is not stored.
  CHECK_FALSE(cache.insert(response("/big", std::string(one * 4, 'y'))));
}

TEST_CASE("purge by exact path or by prefix") {
  ResponseCache cache(1 << 20);
  Request req;
  for (const char* p : {"/news/1", "/news/2?x=1", "/newsletter", "/about"})
    cache.insert(response(p, "b"));
  CHECK(cache.purge("example.com", "/about") == 1);
  CHECK(cache.purge("other.com", "/news*") == 0);
  CHECK(cache.purge("example.com", "/news/*") == 2);
  CHECK(cache.entries() == 1);
  CHECK(cache.find("example.com", "/newsletter", req.lookup(), 0).entry);
}

TEST_CASE("concurrent misses: one leads, the others wait until it ends") {
  ResponseCache cache(1 << 20);
  auto a = std::make_shared<CountingWaiter>();
  auto b = std::make_shared<CountingWaiter>();
  auto c = std::make_shared<CountingWaiter>();
  CHECK(cache.joinFill("example.com", "/x", a));
  CHECK_FALSE(cache.joinFill("example.com", "/x", b));
  CHECK_FALSE(cache.joinFill("example.com", "/x", c));
  CHECK(cache.joinFill("example.com", "/other", a));  // another key has its own leader
  CHECK(b->told == 0);
  cache.endFill("example.com", "/x");
  CHECK(b->told == 1);
  CHECK(c->told == 1);
  CHECK(a->told == 0);  // leaders are not told
  // The next miss leads again.
  CHECK(cache.joinFill("example.com", "/x", b));
}
