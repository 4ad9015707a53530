#include "io/busy_poll.h"

#include <catch2/catch.hpp>

using crest::io::BusyPoll;
using namespace std::chrono_literals;

TEST_CASE("a worker polls for one window after its last event, then sleeps") {
  const BusyPoll::Clock::time_point t0{};
  BusyPoll poll(50us, t0, 7);
  CHECK(poll.keepPolling(t0 + 10us, 7));
  CHECK(poll.idle());
  CHECK(poll.keepPolling(t0 + 49us, 7));
  CHECK_FALSE(poll.keepPolling(t0 + 50us, 7));
}

TEST_CASE("each event restarts the window") {
  const BusyPoll::Clock::time_point t0{};
  BusyPoll poll(50us, t0, 7);
  CHECK(poll.keepPolling(t0 + 40us, 8));
  CHECK_FALSE(poll.idle());  // it had work: no reason to give the core away
  CHECK(poll.keepPolling(t0 + 80us, 8));
  CHECK(poll.idle());
  CHECK_FALSE(poll.keepPolling(t0 + 90us, 8));
}

TEST_CASE("a zero window never polls") {
  const BusyPoll::Clock::time_point t0{};
  BusyPoll poll(0us, t0, 7);
  CHECK_FALSE(poll.keepPolling(t0, 7));
  CHECK_FALSE(poll.keepPolling(t0, 8));
}
