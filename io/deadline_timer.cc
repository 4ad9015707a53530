#include "io/deadline_timer.h"

#include "health/dispatcher.h"

namespace crest::io {

void DeadlineTimer::arm(Clock::time_point deadline, Clock::time_point now) {
  // Rounded up: an event that fires a little early only re-arms itself.
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
  timeval tv = health::toTimeval(std::max(wait, std::chrono::milliseconds(0)));
  evtimer_add(event_, &tv);
  armed_ = deadline;
}

void DeadlineTimer::set(Clock::time_point deadline) {
  deadline_ = deadline;
  if (deadline < armed_) arm(deadline, loop_.clock().now());
}

bool DeadlineTimer::expired() {
  armed_ = Clock::time_point::max();
  if (deadline_ == Clock::time_point::max()) return false;
  auto now = loop_.clock().now();
  if (now >= deadline_) {
    deadline_ = Clock::time_point::max();
    return true;
  }
  arm(deadline_, now);
  return false;
}

}  // namespace crest::io
