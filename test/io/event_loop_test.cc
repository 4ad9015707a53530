#include "io/event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

using crest::io::EventLoop;

namespace {

struct SocketPair {
  int fds[2];
  SocketPair() { REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0); }
  ~SocketPair() {
    close(fds[0]);
    close(fds[1]);
  }
};

void countCall(evutil_socket_t, short, void* arg) {
  ++*static_cast<int*>(arg);
}

}  // namespace

TEST_CASE("an event let go is made again for its next user's socket and callback only") {
  EventLoop loop;
  SocketPair closed, next;
  int closed_calls = 0;
  int next_calls = 0;
  event* first = loop.makeEvent(closed.fds[0], EV_READ | EV_PERSIST, countCall, &closed_calls);
  event_add(first, nullptr);
  loop.releaseEvent(first);

  event* second = loop.makeEvent(next.fds[0], EV_READ | EV_PERSIST, countCall, &next_calls);
  CHECK(second == first);
  CHECK(event_get_fd(second) == next.fds[0]);
  event_add(second, nullptr);
  REQUIRE(write(closed.fds[1], "x", 1) == 1);
  REQUIRE(write(next.fds[1], "y", 1) == 1);
  event_base_loop(loop.base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
  CHECK(closed_calls == 0);
  CHECK(next_calls == 1);
  loop.releaseEvent(second);
}

TEST_CASE("a timer and a socket event share the spares") {
  EventLoop loop;
  SocketPair pair;
  int calls = 0;
  event* timer = loop.makeEvent(-1, 0, countCall, &calls);
  loop.releaseEvent(timer);
  event* io = loop.makeEvent(pair.fds[0], EV_READ, countCall, &calls);
  CHECK(io == timer);
  CHECK(event_get_fd(io) == pair.fds[0]);
  CHECK(event_get_events(io) == EV_READ);
  loop.releaseEvent(io);
}
