#include "balancer/least_conn.h"

#include <catch2/catch.hpp>
#include <map>

#include "test/support/servers.h"

using namespace crest;
using crest::test::sequence;
using crest::test::ServerSet;

TEST_CASE("least_conn: the server with the fewest active requests wins") {
  ServerSet set;
  set.add("a")->active_requests = 5;
  set.add("b")->active_requests = 2;
  set.add("c")->active_requests = 9;
  auto b = balancer::makeBalancer("least_conn", set.members());
  CHECK(sequence(*b, 4) == "bbbb");
}

TEST_CASE("least_conn: ties alternate") {
  ServerSet set;
  set.add("a");
  set.add("b");
  set.add("c");
  auto b = balancer::makeBalancer("least_conn", set.members());
  CHECK(sequence(*b, 6) == "abcabc");
}

TEST_CASE("least_conn: load is relative to weight") {
  ServerSet set;
  set.add("a", 3)->active_requests = 5;  // 5/3 < 2/1
  set.add("b", 1)->active_requests = 2;
  auto b = balancer::makeBalancer("least_conn", set.members());
  CHECK(sequence(*b, 1) == "a");
  set.get("a")->active_requests = 7;  // 7/3 > 2/1
  CHECK(sequence(*b, 1) == "b");
}

TEST_CASE("least_conn: assigning requests as they are picked spreads by weight") {
  ServerSet set;
  set.add("a", 3);
  set.add("b", 1);
  auto b = balancer::makeBalancer("least_conn", set.members());
  std::map<std::string, int> counts;
  for (int i = 0; i < 400; ++i) {
    balancer::Server* s = b->pick({}, {});
    s->active_requests++;  // requests that never finish: the counts alone steer
    counts[s->address]++;
  }
  CHECK(counts["a"] == 300);
  CHECK(counts["b"] == 100);
}

TEST_CASE("least_conn: unhealthy, tried, empty") {
  ServerSet set;
  set.add("a");
  set.add("b")->active_requests = 10;
  auto b = balancer::makeBalancer("least_conn", set.members());
  set.get("a")->healthy = false;
  CHECK(sequence(*b, 2) == "bb");
  balancer::TriedSet tried;
  tried.add(set.get("b"));
  CHECK(b->pick({}, tried) == nullptr);
  ServerSet none;
  CHECK(balancer::makeBalancer("least_conn", none.members())->pick({}, {}) == nullptr);
}
