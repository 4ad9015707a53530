#include "server/worker.h"

#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include "health/dispatcher.h"
#include "io/busy_poll.h"
#include "io/tls_io.h"
#include "observe/log.h"
#include "proxy/downstream_connection.h"

namespace crest::server {

using proxy::DownstreamConnection;

Worker::Worker(std::shared_ptr<const proxy::Runtime> runtime, std::vector<ListenSocket> sockets,
               int access_log_fd, proxy::ConnectionBudget& budget)
    : context_(std::move(runtime), access_log_fd, budget), budget_(budget) {
  for (auto& s : sockets) addAcceptor(s);
}

Worker::~Worker() {
  for (auto& a : acceptors_) closeAcceptor(*a);
  for (auto& t : drain_timers_) event_free(t->ev);
  drain_timers_.clear();
}

void Worker::addAcceptor(const ListenSocket& s) {
  if (context_.draining()) {
    ::close(s.fd);  // a listener added by a reload that raced the stop
    return;
  }
  auto a = std::make_unique<Acceptor>(Acceptor{this, s.listener, s.fd, s.metrics, nullptr});
  a->ev = event_new(context_.loop().base(), s.fd, EV_READ | EV_PERSIST, &Worker::onAccept, a.get());
  event_add(a->ev, nullptr);
  acceptors_.push_back(std::move(a));
}

void Worker::removeListener(const std::string& name, std::chrono::milliseconds drain_timeout) {
  for (auto it = acceptors_.begin(); it != acceptors_.end();) {
    if ((*it)->listener != name) {
      ++it;
      continue;
    }
    closeAcceptor(**it);
    it = acceptors_.erase(it);
  }
  for (auto* c : context_.connectionsOf(&name)) {
    if (context_.isOpen(c)) c->drain();
  }
  // What is still busy when the drain time is up is closed.
  auto timer = std::make_unique<DrainTimer>(DrainTimer{this, name, nullptr});
  timer->ev = evtimer_new(context_.loop().base(), &Worker::onDrainDeadline, timer.get());
  timeval tv = health::toTimeval(drain_timeout);
  evtimer_add(timer->ev, &tv);
  drain_timers_.push_back(std::move(timer));
}

void Worker::onDrainDeadline(evutil_socket_t, short, void* arg) {
  auto* timer = static_cast<DrainTimer*>(arg);
  Worker* self = timer->worker;
  for (auto* c : self->context_.connectionsOf(&timer->listener)) {
    if (self->context_.isOpen(c)) c->abort();
  }
  event_free(timer->ev);
  std::erase_if(self->drain_timers_, [timer](const auto& t) { return t.get() == timer; });
}

void Worker::start() {
  thread_ = std::thread([this] {
    run();
    if (on_exit_) on_exit_();
  });
}

void Worker::run() {
  io::LoopClock& clock = context_.loop().clock();
  event_base* base = context_.loop().base();
  while (true) {
    clock.nextTurn();
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
    if (event_base_got_break(base)) return;
    clock.nextTurn();
    io::BusyPoll poll(context_.runtime()->config().busy_poll, clock.now(), context_.activity());
    // The turn's time, read here, is the one its events see.
    while (poll.keepPolling(clock.now(), context_.activity())) {
      // Polling must not delay a thread that needs this core (the machine's
      // other processes, when they share it).
      if (poll.idle()) {
        sched_yield();
        clock.nextTurn();
      }
      event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY);
      if (event_base_got_break(base)) return;
      clock.nextTurn();
    }
  }
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::onAccept(evutil_socket_t, short, void* arg) {
  auto* a = static_cast<Acceptor*>(arg);
  // Several per wake-up, but bounded, so one busy listener cannot starve the loop.
  a->worker->acceptFrom(*a, 64);
}

void Worker::acceptFrom(Acceptor& a, int max) {
  for (int i = 0; i < max; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int client =
        ::accept4(a.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE)
        observe::log::error("accept: out of file descriptors");
      return;
    }
    a.metrics->connections_total.add();
    if (!budget_.take()) {
      a.metrics->connections_rejected.add();
      ::close(client);
      continue;
    }
    SSL* ssl = nullptr;
    const proxy::ListenerRuntime* listener = context_.runtime()->findListener(a.listener);
    if (listener != nullptr && listener->tls) {
      ssl = listener->tls->newSession();
      io::tlsAttach(ssl, client);
      SSL_set_accept_state(ssl);
    }
    auto* conn = new DownstreamConnection(context_, client, peer, a.metrics, ssl);
    context_.adopt(conn);
    conn->start();
  }
}

void Worker::closeAcceptor(Acceptor& a) {
  event_free(a.ev);
  ::close(a.fd);
}

void Worker::beginShutdown() {
  context_.post([this] {
    // Closed, not only unwatched, so that a balancer in front sees a refusal
    // at once and retries elsewhere. The connections the kernel has already
    // accepted for us are taken first: they are answered once (drain), not reset.
    for (auto& a : acceptors_) {
      acceptFrom(*a, std::numeric_limits<int>::max());
      closeAcceptor(*a);
    }
    acceptors_.clear();
    context_.beginDraining();
    for (auto* c : context_.connectionsOf(nullptr)) {
      if (context_.isOpen(c)) c->drain();
    }
  });
}

void Worker::setRuntime(std::shared_ptr<const proxy::Runtime> runtime,
                        std::vector<ListenSocket> added, std::vector<std::string> removed,
                        std::chrono::milliseconds drain_timeout) {
  context_.post(
      [this, runtime, added = std::move(added), removed = std::move(removed), drain_timeout] {
        context_.setRuntime(runtime);
        for (const auto& name : removed) removeListener(name, drain_timeout);
        for (const auto& s : added) addAcceptor(s);
      });
}

void Worker::forceStop() {
  // Through the task queue: a break requested from another thread while the
  // worker is between two polls would otherwise be cleared by the next one.
  context_.post([this] { event_base_loopbreak(context_.loop().base()); });
}

}  // namespace crest::server
