#pragma once
// The time of a worker's current loop turn: the steady clock is read once a
// turn, when first asked. A keep-alive request asked it a dozen times (its
// deadlines, its activity, its durations), 0.3 us of the worker's time on a
// virtual machine. All readings within a turn are the same, so deadlines and
// the durations in metrics and the access log are measured to the turn (its
// length is the time the worker takes for the events of one poll; NGINX and
// HAProxy cache their time per loop pass the same way).
// Worker-thread only.

#include <chrono>

namespace crest::io {

class LoopClock {
 public:
  using Clock = std::chrono::steady_clock;

  Clock::time_point now() {
    if (!fresh_) {
      now_ = Clock::now();
      fresh_ = true;
    }
    return now_;
  }
  // A new turn begins (or the thread may have waited): the next now() reads the clock.
  void nextTurn() { fresh_ = false; }

 private:
  Clock::time_point now_{};
  bool fresh_ = false;
};

}  // namespace crest::io
