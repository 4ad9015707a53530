#pragma once
// When a worker keeps polling instead of sleeping. After an event, a worker
// polls without blocking for a short window before it sleeps in epoll_wait;
// each event in the window starts it again. On a virtual machine, waking a
// sleeping vCPU costs an inter-processor interrupt and a VM exit, paid by the
// process that sends the wake-up: a proxy that sleeps between requests makes
// its clients and servers pay that once per request (docs/performance.md).
// Idle, a worker still sleeps, one window after its last event.

#include <chrono>
#include <cstdint>

namespace crest::io {

class BusyPoll {
 public:
  using Clock = std::chrono::steady_clock;

  // `activity` counts the worker's events; the window starts at `now`.
  BusyPoll(std::chrono::microseconds window, Clock::time_point now, uint64_t activity)
      : window_(window), until_(now + window), seen_(activity) {}

  // Whether to poll once more: an event since the last call restarts the window.
  bool keepPolling(Clock::time_point now, uint64_t activity) {
    idle_ = activity == seen_;
    if (!idle_) {
      seen_ = activity;
      until_ = now + window_;
    }
    return now < until_;
  }
  // The last keepPolling saw no event: the worker may give its core to a
  // thread that waits for it before polling again.
  bool idle() const { return idle_; }

 private:
  std::chrono::microseconds window_;
  Clock::time_point until_;
  uint64_t seen_;
  bool idle_ = true;
};

}  // namespace crest::io
