#pragma once
// A Dispatcher whose clock moves only when the test says so.

#include <map>
#include <utility>

#include "health/dispatcher.h"

namespace crest::test {

class FakeDispatcher : public health::Dispatcher {
 public:
  health::Clock::time_point now() const override { return now_; }

  TimerId schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    TimerId id = next_id_++;
    timers_.emplace(std::make_pair(now_ + delay, id), std::move(fn));
    return id;
  }

  void cancel(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }

  // Moves the clock forward, running every timer that falls due, in order.
  void advance(std::chrono::milliseconds d) {
    auto end = now_ + d;
    while (!timers_.empty() && timers_.begin()->first.first <= end) {
      auto it = timers_.begin();
      now_ = it->first.first;
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    now_ = end;
  }

 private:
  health::Clock::time_point now_{};
  TimerId next_id_ = 1;
  std::map<std::pair<health::Clock::time_point, TimerId>, std::function<void()>> timers_;
};

}  // namespace crest::test
