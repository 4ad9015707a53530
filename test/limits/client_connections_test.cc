#include "limits/client_connections.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using crest::limits::ClientConnections;

TEST_CASE("client connections: each client up to its limit, entries only while open") {
  ClientConnections table;
  CHECK(table.take(1, 2));
  CHECK(table.take(1, 2));
  CHECK_FALSE(table.take(1, 2));
  CHECK(table.take(2, 2));  // another client is counted apart
  CHECK(table.clients() == 2);
  table.give(1);
  CHECK(table.take(1, 2));  // room again
  table.give(1);
  table.give(1);
  table.give(2);
  CHECK(table.clients() == 0);
  CHECK_FALSE(table.take(3, 0));  // refused before it was counted: no entry left behind
  CHECK(table.clients() == 0);
}

TEST_CASE("client connections: threads taking at once never pass the limit") {
  ClientConnections table;
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (table.take(42, 10)) ++taken;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(taken == 10);
}
