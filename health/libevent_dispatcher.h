#pragma once
// Dispatcher on a libevent event_base. Single-threaded: the base's thread only.

#include <event2/event.h>

#include <memory>
#include <unordered_map>

#include "health/dispatcher.h"

namespace crest::health {

class LibeventDispatcher : public Dispatcher {
 public:
  explicit LibeventDispatcher(event_base* base) : base_(base) {}
  ~LibeventDispatcher() override;

  Clock::time_point now() const override { return Clock::now(); }
  TimerId schedule(std::chrono::milliseconds delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;

 private:
  struct Timer {
    LibeventDispatcher* owner;
    TimerId id;
    event* ev;
    std::function<void()> fn;
  };
  static void onTimer(evutil_socket_t fd, short what, void* arg);

  event_base* base_;
  TimerId next_id_ = 1;
  std::unordered_map<TimerId, std::unique_ptr<Timer>> timers_;
};

}  // namespace crest::health
