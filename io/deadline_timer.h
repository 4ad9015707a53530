#pragma once
// A timer event re-armed only when its deadline moves earlier. Setting a
// later deadline, or clearing it, costs no event operation: when the armed
// event fires before the deadline, expired() re-arms it for the rest. A
// keep-alive exchange moves its connection's deadlines several times, and
// with this nearly never touches the event loop's timer heap.
// Worker-thread only.

#include <event2/event.h>

#include <chrono>

#include "io/event_loop.h"

namespace crest::io {

class DeadlineTimer {
 public:
  using Clock = LoopClock::Clock;

  DeadlineTimer(EventLoop& loop, event_callback_fn callback, void* arg)
      : loop_(loop), event_(loop.makeEvent(-1, 0, callback, arg)) {}
  ~DeadlineTimer() { loop_.releaseEvent(event_); }
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  void set(Clock::time_point deadline);
  void setIn(std::chrono::milliseconds timeout) { set(loop_.clock().now() + timeout); }
  // Moves the deadline to `deadline` if that is earlier, never later.
  void setNoLaterThan(Clock::time_point deadline) {
    if (deadline < deadline_) set(deadline);
  }
  void clear() { deadline_ = Clock::time_point::max(); }
  // For the callback: true when the deadline has passed (it is then
  // cleared); false when the event fired early (re-armed) or for nothing.
  bool expired();

 private:
  void arm(Clock::time_point deadline, Clock::time_point now);

  EventLoop& loop_;
  event* event_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();  // when the event fires; max: not armed
};

}  // namespace crest::io
