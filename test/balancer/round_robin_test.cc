#include "balancer/round_robin.h"

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "test/support/servers.h"

using namespace crest;
using crest::test::sequence;
using crest::test::ServerSet;

TEST_CASE("round_robin: weights 5:1:1 interleave") {
  ServerSet set;
  set.add("a", 5);
  set.add("b", 1);
  set.add("c", 1);
  auto b = balancer::makeBalancer("round_robin", set.members());
  CHECK(sequence(*b, 14) == "aabacaaaabacaa");
}

TEST_CASE("round_robin: weights 3:1 give a a b a and never a burst") {
  ServerSet set;
  set.add("a", 3);
  set.add("b", 1);
  auto b = balancer::makeBalancer("round_robin", set.members());
  CHECK(sequence(*b, 8) == "aabaaaba");
}

TEST_CASE("round_robin: equal weights alternate") {
  ServerSet set;
  set.add("a");
  set.add("b");
  set.add("c");
  auto b = balancer::makeBalancer("round_robin", set.members());
  CHECK(sequence(*b, 6) == "abcabc");
}

TEST_CASE("round_robin: weights reduce by their common divisor") {
  ServerSet set;
  set.add("a", 200);
  set.add("b", 100);
  balancer::RoundRobinBalancer b(set.members());
  CHECK(b.schedule().size() == 3);
}

TEST_CASE("round_robin: unhealthy and tried servers are skipped while the rest keep their ratio") {
  ServerSet set;
  set.add("a", 2);
  set.add("b", 1);
  set.add("c", 1);
  auto b = balancer::makeBalancer("round_robin", set.members());
  set.get("a")->healthy = false;
  std::map<std::string, int> counts;
  for (int i = 0; i < 1000; ++i) counts[b->pick({}, {})->address]++;
  CHECK(counts["a"] == 0);
  CHECK(counts["b"] == 500);
  CHECK(counts["c"] == 500);

  balancer::TriedSet tried;
  tried.add(set.get("b"));
  for (int i = 0; i < 10; ++i) CHECK(b->pick({}, tried)->address == "c");
  tried.add(set.get("c"));
  CHECK(b->pick({}, tried) == nullptr);
}

TEST_CASE("round_robin: edge cases") {
  ServerSet none;
  CHECK(balancer::makeBalancer("round_robin", none.members())->pick({}, {}) == nullptr);
  ServerSet one;
  one.add("a", 7);
  auto b = balancer::makeBalancer("round_robin", one.members());
  CHECK(sequence(*b, 3) == "aaa");
  one.get("a")->healthy = false;
  CHECK(b->pick({}, {}) == nullptr);
}

TEST_CASE("round_robin: picks from several threads together honour the weights") {
  ServerSet set;
  set.add("a", 3);
  set.add("b", 1);
  auto b = balancer::makeBalancer("round_robin", set.members());
  std::atomic<int> a_count{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) a_count += b->pick({}, {})->address == "a";
    });
  }
  for (auto& t : threads) t.join();
  // One shared cursor: exactly 3/4 of the 40,000 picks.
  CHECK(a_count == 30000);
}

TEST_CASE("registry: unknown names give no balancer") {
  ServerSet set;
  set.add("a");
  CHECK(balancer::makeBalancer("random", set.members()) == nullptr);
  for (const char* name : {"round_robin", "least_conn", "ip_hash"}) {
    CHECK(balancer::makeBalancer(name, set.members()) != nullptr);
  }
}
