#pragma once
// The seam between time-driven logic and the event loop: the current time and
// one-shot timers. Production code uses LibeventDispatcher; tests drive a fake
// whose clock moves only when told, so 60 simulated seconds take microseconds.

#include <sys/time.h>

#include <chrono>
#include <cstdint>
#include <functional>

namespace crest::health {

using Clock = std::chrono::steady_clock;

// A duration as the timeval libevent's timers take.
inline timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class Dispatcher {
 public:
  using TimerId = uint64_t;
  virtual ~Dispatcher() = default;
  virtual Clock::time_point now() const = 0;
  // Runs `fn` once after `delay` on the dispatcher's thread.
  virtual TimerId schedule(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  // Forgets a timer that has not fired; unknown ids are ignored.
  virtual void cancel(TimerId id) = 0;
};

}  // namespace crest::health
