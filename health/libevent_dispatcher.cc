#include "health/libevent_dispatcher.h"

namespace crest::health {

LibeventDispatcher::~LibeventDispatcher() {
  for (auto& [id, t] : timers_) event_free(t->ev);
}

Dispatcher::TimerId LibeventDispatcher::schedule(std::chrono::milliseconds delay,
                                                 std::function<void()> fn) {
  TimerId id = next_id_++;
  auto timer = std::make_unique<Timer>(Timer{this, id, nullptr, std::move(fn)});
  timer->ev = evtimer_new(base_, &LibeventDispatcher::onTimer, timer.get());
  timeval tv = toTimeval(delay);
  evtimer_add(timer->ev, &tv);
  timers_.emplace(id, std::move(timer));
  return id;
}

void LibeventDispatcher::cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  event_free(it->second->ev);
  timers_.erase(it);
}

void LibeventDispatcher::onTimer(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<Timer*>(arg);
  LibeventDispatcher* self = t->owner;
  auto node = self->timers_.extract(t->id);
  std::function<void()> fn = std::move(t->fn);
  event_free(t->ev);
  node.mapped().reset();
  fn();
}

}  // namespace crest::health
