#include "io/event_loop.h"

namespace crest::io {

event* EventLoop::makeEvent(evutil_socket_t fd, short what, event_callback_fn callback, void* arg) {
  event* ev = spare_events_.take();
  if (ev == nullptr) return event_new(base_, fd, what, callback, arg);
  event_assign(ev, base_, fd, what, callback, arg);
  return ev;
}

void EventLoop::releaseEvent(event* ev) {
  event_del(ev);
  spare_events_.give(ev);
}

}  // namespace crest::io
