#include "proxy/upstream_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "health/dispatcher.h"
#include "proxy/upstream_pool.h"

namespace crest::proxy {

using namespace io;

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, std::shared_ptr<UpstreamServer> server)
    : pool_(pool),
      server_(std::move(server)),
      in_(evbuffer_new()),
      timer_(pool.loop(), &UpstreamConnection::onTimer, this) {}

UpstreamConnection::~UpstreamConnection() {
  if (event_) pool_.loop().releaseEvent(event_);
  if (fd_ >= 0) ::close(fd_);
  evbuffer_free(in_);
}

bool UpstreamConnection::connect(std::chrono::milliseconds timeout) {
  const SocketAddress& addr = server_->socket_address;
  fd_ = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    connect_errno_ = errno;
    state_ = State::Failed;
    return false;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, addr.get(), addr.length) != 0 && errno != EINPROGRESS) {
    connect_errno_ = errno;
    state_ = State::Failed;
    return false;
  }
  event_ = pool_.loop().makeEvent(fd_, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET,
                                  &UpstreamConnection::onEvent, this);
  event_add(event_, nullptr);
  timer_.setIn(timeout);
  return true;
}

void UpstreamConnection::checkConnect() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    connect_errno_ = err;
    state_ = State::Failed;
    broken_ = true;
  } else {
    state_ = State::Connected;
    timer_.clear();
  }
}

void UpstreamConnection::onEvent(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<UpstreamConnection*>(arg);
  if (what & (EV_READ | EV_CLOSED)) self->readable_ = true;
  if (what & EV_CLOSED) self->closing_ = true;
  if (self->state_ == State::Connecting && (what & (EV_WRITE | EV_READ))) self->checkConnect();
  if (self->idle_) {
    // An edge queued while the last response was being read can arrive after
    // it was read to the end: only EOF, data or an error end a resting
    // connection, never the wake-up alone.
    char byte;
    ssize_t n = ::recv(self->fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    self->pool_.discard(self);
    return;
  }
  if (self->handler_) self->handler_->onUpstreamEvent();
}

void UpstreamConnection::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<UpstreamConnection*>(arg);
  if (!self->timer_.expired()) return;
  if (self->idle_) {
    self->pool_.discard(self);
    return;
  }
  if (self->state_ == State::Connected && self->response_timeout_.count() > 0) {
    // The response clock restarts on every read; the timer is only re-armed
    // lazily here, so reads stay free of timer operations.
    auto quiet_until = self->last_activity_ + self->response_timeout_;
    if (self->pool_.loop().clock().now() < quiet_until) {
      self->timer_.set(quiet_until);
      return;
    }
  }
  if (self->handler_) self->handler_->onUpstreamTimeout();
}

bool UpstreamConnection::flush(std::string& head, evbuffer* body) {
  if (state_ != State::Connected || broken_) return !broken_;
  size_t written = 0;
  IoResult r = writeFrom(fd_, head, body, written);
  if (r == IoResult::Error) broken_ = true;
  return !broken_;
}

void UpstreamConnection::pullInput(size_t cap, ReadScratch& scratch, std::string_view* kept) {
  if (state_ != State::Connected || !readable_ || peer_closed_ || broken_) return;
  size_t got = 0;
  IoResult r = readInto(fd_, in_, cap, got, closing_, scratch, reads_large_, kept);
  if (got > 0) last_activity_ = pool_.loop().clock().now();
  switch (r) {
    case IoResult::WouldBlock:
      readable_ = false;
      break;
    case IoResult::Closed:
      peer_closed_ = true;
      break;
    case IoResult::Error:
      broken_ = true;
      break;
    case IoResult::Progress:
      break;
  }
}

void UpstreamConnection::expectResponseWithin(std::chrono::milliseconds timeout) {
  response_timeout_ = timeout;
  last_activity_ = pool_.loop().clock().now();
  timer_.set(last_activity_ + timeout);
}

void UpstreamConnection::noteActivity() {
  last_activity_ = pool_.loop().clock().now();
}

void UpstreamConnection::stopTimer() {
  response_timeout_ = std::chrono::milliseconds(0);
  timer_.clear();
}

void UpstreamConnection::parkIdle(std::chrono::milliseconds idle_timeout) {
  handler_ = nullptr;
  idle_ = true;
  response_timeout_ = std::chrono::milliseconds(0);
  timer_.setIn(idle_timeout);
}

void UpstreamConnection::unpark() {
  idle_ = false;
  timer_.clear();
}

}  // namespace crest::proxy
