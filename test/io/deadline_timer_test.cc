#include "io/deadline_timer.h"

#include <catch2/catch.hpp>

using crest::io::DeadlineTimer;
using crest::io::EventLoop;
using namespace std::chrono_literals;

namespace {

struct Fired {
  DeadlineTimer* timer = nullptr;
  int expired = 0;  // calls that found the deadline passed
};

void onTimer(evutil_socket_t, short, void* arg) {
  auto* fired = static_cast<Fired*>(arg);
  if (fired->timer->expired()) ++fired->expired;
}

// One turn of the loop, without waiting: only a timer already due fires.
void turn(EventLoop& loop) {
  event_base_loop(loop.base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

}  // namespace

// The loop's clock stays at one reading throughout (no nextTurn): "now" is
// due, an hour on is not, whatever the real time does.
TEST_CASE("setNoLaterThan moves a deadline earlier") {
  EventLoop loop;
  Fired fired;
  DeadlineTimer timer(loop, onTimer, &fired);
  fired.timer = &timer;
  auto now = loop.clock().now();
  timer.set(now + 1h);
  turn(loop);
  CHECK(fired.expired == 0);
  timer.setNoLaterThan(now);
  turn(loop);
  CHECK(fired.expired == 1);
}

TEST_CASE("setNoLaterThan never moves a deadline later") {
  EventLoop loop;
  Fired fired;
  DeadlineTimer timer(loop, onTimer, &fired);
  fired.timer = &timer;
  auto now = loop.clock().now();
  timer.set(now);
  timer.setNoLaterThan(now + 1h);
  turn(loop);
  CHECK(fired.expired == 1);
  // A cleared timer has no deadline: any is earlier.
  timer.setNoLaterThan(now + 1h);
  turn(loop);
  CHECK(fired.expired == 1);
}
