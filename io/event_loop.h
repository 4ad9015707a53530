#pragma once
// A worker's event loop: its event_base, the time of its current turn, and
// the events its connections have let go, kept for reuse. A connection takes
// two events (its socket's and its deadline timer's) and gives them back when
// it closes, so a new connection allocates none; libevent allows re-assigning
// an event that is not pending. Worker-thread only.

#include <event2/event.h>

#include "io/loop_clock.h"
#include "io/spare_list.h"

namespace crest::io {

class EventLoop {
 public:
  EventLoop() : base_(event_base_new()) {}
  ~EventLoop() {
    spare_events_.clear();  // before the base they belong to
    event_base_free(base_);
  }
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  event_base* base() const { return base_; }
  LoopClock& clock() { return clock_; }

  // An event on this loop, as event_new would make it (fd -1: a timer).
  event* makeEvent(evutil_socket_t fd, short what, event_callback_fn callback, void* arg);
  // Takes back an event no longer used; it leaves the loop here.
  void releaseEvent(event* ev);

 private:
  event_base* base_;
  LoopClock clock_;
  // Enough for the connections that close and open within a few loop turns.
  SpareList<event, event_free, 256> spare_events_;
};

}  // namespace crest::io
