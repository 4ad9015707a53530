#include "proxy/worker.h"

#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "health/dispatcher.h"
#include "io/busy_poll.h"
#include "proxy/downstream_connection.h"
#include "observe/log.h"
#include "io/tls_io.h"

namespace crest::proxy {

using namespace http;
using namespace io;
using namespace observe;

Worker::Worker(std::shared_ptr<const Runtime> runtime, std::vector<ListenSocket> sockets,
               int access_log_fd, ConnectionBudget& budget)
    : runtime_(std::move(runtime)),
      upstream_pool_(loop_),
      budget_(budget),
      random_(std::random_device{}()) {
  if (access_log_fd >= 0)
    access_log_ = std::make_unique<AccessLogWriter>(loop_.base(), access_log_fd);
  tasks_event_ = event_new(loop_.base(), -1, EV_PERSIST, &Worker::onTasks, this);
  event_add(tasks_event_, nullptr);
  for (auto& s : sockets) addAcceptor(s);
}

void Worker::addAcceptor(const ListenSocket& s) {
  if (draining_) {
    ::close(s.fd);  // a listener added by a reload that raced the stop
    return;
  }
  auto a = std::make_unique<Acceptor>(Acceptor{this, s.listener, s.fd, s.metrics, nullptr});
  a->ev = event_new(loop_.base(), s.fd, EV_READ | EV_PERSIST, &Worker::onAccept, a.get());
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
  for (auto* c : connectionsOf(name)) {
    if (connections_.count(c)) c->drain();
  }
  // What is still busy when the drain time is up is closed.
  auto timer = std::make_unique<DrainTimer>(DrainTimer{this, name, nullptr});
  timer->ev = evtimer_new(loop_.base(), &Worker::onDrainDeadline, timer.get());
  timeval tv = health::toTimeval(drain_timeout);
  evtimer_add(timer->ev, &tv);
  drain_timers_.push_back(std::move(timer));
}

void Worker::onDrainDeadline(evutil_socket_t, short, void* arg) {
  auto* timer = static_cast<DrainTimer*>(arg);
  Worker* self = timer->worker;
  for (auto* c : self->connectionsOf(timer->listener)) {
    if (self->connections_.count(c)) c->abort();
  }
  event_free(timer->ev);
  std::erase_if(self->drain_timers_, [timer](const auto& t) { return t.get() == timer; });
}

std::vector<DownstreamConnection*> Worker::connectionsOf(const std::string& name) const {
  std::vector<DownstreamConnection*> out;
  for (auto* c : connections_) {
    if (c->listener() == name) out.push_back(c);
  }
  return out;
}

Worker::~Worker() {
  for (auto* c : std::vector<DownstreamConnection*>(connections_.begin(), connections_.end())) {
    delete c;
    budget_.give();
  }
  connections_.clear();
  upstream_pool_.clear();
  access_log_.reset();
  for (auto& a : acceptors_) closeAcceptor(*a);
  for (auto& t : drain_timers_) event_free(t->ev);
  drain_timers_.clear();
  event_free(tasks_event_);
}

void Worker::start() {
  thread_ = std::thread([this] {
    run();
    if (on_exit_) on_exit_();
  });
}

void Worker::run() {
  LoopClock& clock = loop_.clock();
  event_base* base = loop_.base();
  while (true) {
    clock.nextTurn();
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
    if (event_base_got_break(base)) return;
    clock.nextTurn();
    BusyPoll poll(runtime_->config().busy_poll, clock.now(), activity_);
    // The turn's time, read here, is the one its events see.
    while (poll.keepPolling(clock.now(), activity_)) {
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

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  event_active(tasks_event_, EV_READ, 0);
}

void Worker::onTasks(evutil_socket_t, short, void* arg) {
  static_cast<Worker*>(arg)->runTasks();
}

void Worker::runTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
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
      if (errno == EMFILE || errno == ENFILE) log::error("accept: out of file descriptors");
      return;
    }
    a.metrics->connections_total.add();
    if (!budget_.take()) {
      a.metrics->connections_rejected.add();
      ::close(client);
      continue;
    }
    SSL* ssl = nullptr;
    const ListenerRuntime* listener = runtime_->findListener(a.listener);
    if (listener != nullptr && listener->tls) {
      ssl = listener->tls->newSession();
      tlsAttach(ssl, client);
      SSL_set_accept_state(ssl);
    }
    auto* conn = new DownstreamConnection(*this, client, peer, a.metrics, ssl);
    connections_.insert(conn);
    conn->start();
  }
}

void Worker::closeAcceptor(Acceptor& a) {
  event_free(a.ev);
  ::close(a.fd);
}

void Worker::connectionClosed(DownstreamConnection* conn) {
  connections_.erase(conn);
  delete conn;
  budget_.give();
  maybeExit();
}

void Worker::beginShutdown() {
  post([this] {
    draining_ = true;
    // Closed, not only unwatched, so that a balancer in front sees a refusal
    // at once and retries elsewhere. The connections the kernel has already
    // accepted for us are taken first: they are answered once (drain), not reset.
    for (auto& a : acceptors_) {
      acceptFrom(*a, std::numeric_limits<int>::max());
      closeAcceptor(*a);
    }
    acceptors_.clear();
    for (auto* c : std::vector<DownstreamConnection*>(connections_.begin(), connections_.end())) {
      if (connections_.count(c)) c->drain();
    }
    maybeExit();
  });
}

void Worker::setRuntime(std::shared_ptr<const Runtime> runtime, std::vector<ListenSocket> added,
                        std::vector<std::string> removed, std::chrono::milliseconds drain_timeout) {
  post([this, runtime, added = std::move(added), removed = std::move(removed), drain_timeout] {
    runtime_ = runtime;
    for (const auto& name : removed) removeListener(name, drain_timeout);
    for (const auto& s : added) addAcceptor(s);
  });
}

void Worker::forceStop() {
  // Through the task queue: a break requested from another thread while the
  // worker is between two polls would otherwise be cleared by the next one.
  post([this] { event_base_loopbreak(loop_.base()); });
}

void Worker::maybeExit() {
  if (draining_ && connections_.empty()) event_base_loopbreak(loop_.base());
}

std::unique_ptr<Exchange> Worker::takeExchange(ParserLimits request_limits) {
  Exchange* spare = spare_exchanges_.take();
  if (spare == nullptr) return std::make_unique<Exchange>(request_limits);
  spare->restart(request_limits);
  return std::unique_ptr<Exchange>(spare);
}

void Worker::recycleExchange(std::unique_ptr<Exchange> exchange) {
  spare_exchanges_.give(exchange.release());
}

evbuffer* Worker::takeBuffer() {
  evbuffer* spare = spare_buffers_.take();
  return spare != nullptr ? spare : evbuffer_new();
}

void Worker::recycleBuffer(evbuffer* buffer) {
  // Idle connections give theirs back empty; a closed one may leave bytes.
  if (size_t left = evbuffer_get_length(buffer)) evbuffer_drain(buffer, left);
  spare_buffers_.give(buffer);
}

void Worker::newRequestId(std::string& id) {
  // Two digits a byte of randomness, from a table of all 256 pairs.
  static constexpr auto kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<std::array<char, 2>, 256> pairs{};
    for (size_t b = 0; b < pairs.size(); ++b) pairs[b] = {kHex[b >> 4], kHex[b & 15]};
    return pairs;
  }();
  id.resize(32);
  char* out = id.data();
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = random_();
    for (int i = 0; i < 8; ++i, bits >>= 8, out += 2)
      std::memcpy(out, kPairs[bits & 255].data(), 2);
  }
}

}  // namespace crest::proxy
