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

// A timer on a loop whose clock stays at one reading throughout (no
// nextTurn): "now" is due, an hour on is not, whatever the real time does.
struct TimerOnLoop {
  EventLoop loop;
  Fired fired;
  DeadlineTimer timer{loop, onTimer, &fired};
  DeadlineTimer::Clock::time_point now = loop.clock().now();
  TimerOnLoop() { fired.timer = &timer; }
  // One turn of the loop, without waiting: only a timer already due fires.
  void turn() { event_base_loop(loop.base(), EVLOOP_ONCE | EVLOOP_NONBLOCK); }
};

}  // namespace

TEST_CASE("setNoLaterThan moves a deadline earlier") {
  TimerOnLoop t;
  t.timer.set(t.now + 1h);
  t.turn();
  CHECK(t.fired.expired == 0);
  t.timer.setNoLaterThan(t.now);
  t.turn();
  CHECK(t.fired.expired == 1);
}

TEST_CASE("setNoLaterThan never moves a deadline later") {
  TimerOnLoop t;
  t.timer.set(t.now);
  t.timer.setNoLaterThan(t.now + 1h);
  t.turn();
  CHECK(t.fired.expired == 1);
  // An expired timer has no deadline: any is earlier, and not yet due.
  t.timer.setNoLaterThan(t.now + 1h);
  t.turn();
  CHECK(t.fired.expired == 1);
}
