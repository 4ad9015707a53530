#include "proxy/downstream_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "io/proxy_protocol.h"
#include "io/tls_io.h"
#include "proxy/exchange.h"
#include "proxy/worker_context.h"

namespace crest::proxy {

using namespace http;
using namespace io;
using namespace observe;

namespace {

constexpr std::chrono::milliseconds kLinger{2000};
// How long an HTTP/2 connection over TLS without open streams keeps
// OpenSSL's buffers (startHttp2): a browser's next requests come sooner.
constexpr std::chrono::milliseconds kTlsBufferLinger{1000};

}  // namespace

DownstreamConnection::DownstreamConnection(WorkerContext& worker, int fd,
                                           const sockaddr_storage& peer,
                                           ListenerCells* listener_metrics, SSL* ssl)
    : worker_(worker),
      fd_(fd),
      client_{{}, ssl != nullptr, listener_metrics},
      ssl_(ssl),
      timer_(worker.loop(), &DownstreamConnection::onTimer, this),
      handshake_done_(ssl == nullptr),
      client_readable_(ssl != nullptr) {
  client_.peer.set(peer);
  event_ = worker_.loop().makeEvent(fd_, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET,
                                    &DownstreamConnection::onEvent, this);

  client_.listener_metrics->connections_active.add(1);
}

DownstreamConnection::~DownstreamConnection() {
  client_.listener_metrics->connections_active.add(-1);
  if (client_counted_) worker_.clientConnections().give(client_.peer.hash);
  h2_.reset();
  // What the connection held serves the worker's next connections, as it
  // does when a keep-alive connection goes idle.
  if (exchange_) giveBackExchange();
  worker_.loop().releaseEvent(event_);
  if (ssl_ != nullptr) {
    // Freed without a close_notify sent, a session leaves OpenSSL's cache,
    // and most clients hang up without one: their session ids (and TLS 1.3
    // tickets when session tickets are off) would never resume. TLS 1.1 and
    // later allow resuming them; a fatal alert has removed its session already.
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);
  }
  if (fd_ >= 0) ::close(fd_);
  if (in_ != nullptr) worker_.recycleBuffer(in_);
  if (out_ != nullptr) worker_.recycleBuffer(out_);
}

void DownstreamConnection::start() {
  runtime_ = worker_.runtime();
  listener_ = runtime_->findListener(listener());
  event_add(event_, nullptr);
  timer_.setIn(runtime_->config().timeouts.client_header);
  awaiting_proxy_header_ = listener_ != nullptr && listener_->config->proxy_protocol;
  if (!awaiting_proxy_header_ && !admitClient()) pump();  // closed: pump lets it go
}

bool DownstreamConnection::admitClient() {
  uint32_t limit = runtime_->config().limits.max_connections_per_client;
  if (limit == 0) return true;
  if (!worker_.clientConnections().take(client_.peer.hash, limit)) {
    client_.listener_metrics->refused_per_client.add();
    closeNow();
    return false;
  }
  client_counted_ = true;
  return true;
}

bool DownstreamConnection::readProxyHeader() {
  char bytes[kMaxProxyHeader];
  ssize_t n = ::recv(fd_, bytes, sizeof bytes, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n <= 0) {
    closeNow();  // gone before its header (a balancer's TCP health check)
    return false;
  }
  ProxyHeader header = parseProxyHeader(std::string_view(bytes, static_cast<size_t>(n)));
  if (header.status == ProxyHeader::Status::Incomplete) return false;
  if (header.status == ProxyHeader::Status::Invalid ||
      ::recv(fd_, bytes, header.length, 0) != static_cast<ssize_t>(header.length)) {
    client_.listener_metrics->refused_proxy_protocol.add();
    closeNow();
    return false;
  }
  if (header.has_source) client_.peer.set(header.source);
  awaiting_proxy_header_ = false;
  client_readable_ = true;  // what came with the header has had its edge
  return admitClient();
}

void DownstreamConnection::onEvent(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<DownstreamConnection*>(arg);
  self->wake_pending_ = false;
  if (what & (EV_READ | EV_CLOSED)) self->client_readable_ = true;
  if (what & EV_CLOSED) self->client_closing_ = true;
  self->pump();
}

void DownstreamConnection::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<DownstreamConnection*>(arg);
  if (!self->timer_.expired()) return;
  const auto& timeouts = self->runtime_->config().timeouts;
  if (self->awaiting_proxy_header_) {
    self->client_.listener_metrics->refused_proxy_protocol.add();
    self->closeNow();
  } else if (self->phase_ == Phase::AwaitingRequest && self->requestStarted()) {
    self->exchange_->answer(
        LocalCause::HeadTimeout,
        "the request head did not arrive within " + conf::formatDuration(timeouts.client_header));
  } else if (self->exchange_ && self->exchange_->timedWait()) {
    self->exchange_->onWaitTimeout();
  } else if (self->phase_ == Phase::Http2 && self->h2_->waitingOnServers()) {
    self->timer_.setIn(timeouts.client_idle);
    return;
  } else if (self->phase_ == Phase::Proxying && self->exchange_->upstream.tunneling()) {
    // The tunnel's own clock (tunnel_idle, bytes either way) governs.
    self->timer_.setIn(timeouts.tunnel_idle);
    return;
  } else if (self->phase_ == Phase::Proxying || self->phase_ == Phase::Http2) {
    if (self->phase_ == Phase::Http2 && self->ssl_ != nullptr && !self->h2_->hasStreams())
      SSL_free_buffers(self->ssl_);  // fails, harmlessly, while they hold bytes
    // Inactivity of the client while it owes us body bytes or reading; I/O
    // only notes the time, the deadline follows it here.
    auto idle_until = self->client_activity_ + timeouts.client_idle;
    if (self->worker_.clock().now() < idle_until) {
      self->timer_.set(idle_until);
      return;
    }
    self->closeNow();
  } else {
    self->closeNow();
  }
  self->pump();
}

void DownstreamConnection::wakeConnection() {
  if (wake_pending_ || phase_ == Phase::Closed) return;
  wake_pending_ = true;
  event_active(event_, EV_WRITE, 0);
}

void DownstreamConnection::drain() {
  close_after_response_ = true;
  if (h2_) h2_->shutdown();
  if (phase_ == Phase::AwaitingRequest && !requestStarted() && served_one_) closeNow();
  pump();
}

void DownstreamConnection::abort() {
  closeNow();
  pump();
}

void DownstreamConnection::pump() {
  worker_.noteActivity();
  while (phase_ != Phase::Closed) {
    if (awaiting_proxy_header_ && !readProxyHeader()) break;
    if (!handshake_done_ && !handshake()) break;
    // A request head that comes in one read is parsed where it was read:
    // readClient leaves it in the worker's scratch memory for parseRequestHead.
    std::string_view unparsed;
    bool progress = readClient(unparsed);
    if (phase_ == Phase::AwaitingRequest) progress |= parseRequestHead(unparsed);
    if (phase_ == Phase::Http2) {
      progress |= pumpHttp2();
      if (phase_ == Phase::Closed) break;
    }
    // parseRequestHead takes what readClient left in the worker's scratch
    // memory; should it ever return early, the bytes must not stay there.
    if (!unparsed.empty()) evbuffer_add(in_, unparsed.data(), unparsed.size());
    // A queued request's body waits in the input buffer, behind its head.
    bool waiting = exchange_ && exchange_->waiting();
    if (phase_ == Phase::Proxying && !waiting) progress |= forwardRequestBody();
    if (waiting && (client_eof_ || client_error_)) {
      closeNow(LocalCause::ClientClosed);  // its place in the queue goes at once
      break;
    }
    if (phase_ == Phase::Proxying && exchange_->upstream.active())
      progress |= exchange_->upstream.drive(*exchange_);
    progress |= flushClient();
    if (client_error_ && phase_ != Phase::Closed) {
      closeNow(LocalCause::ClientClosed);
      break;
    }
    if (phase_ == Phase::Closing && unsentBytes() == 0) {
      if (ssl_ != nullptr && handshake_done_) SSL_shutdown(ssl_);  // close_notify, best effort
      if (clientDone()) {
        closeNow();
        break;
      }
      // Lingering close: stop sending, keep reading what the client still sends
      // for a while, so our last response is not destroyed by a reset.
      ::shutdown(fd_, SHUT_WR);
      phase_ = Phase::Lingering;
      timer_.setIn(kLinger);
      progress = true;
    }
    if (phase_ == Phase::Lingering && client_eof_) closeNow();
    if (!progress) break;
  }
  if (phase_ == Phase::Closed) {
    worker_.connectionClosed(this);  // deletes this
  } else if (phase_ == Phase::AwaitingRequest && !requestStarted() && bufferedBytes(in_) == 0) {
    // Idle until the client asks again, maybe for a long time: hold no
    // per-request memory meanwhile. Only here, where no caller up the stack
    // still uses the exchange.
    if (exchange_ && exchange_->response_head.empty()) giveBackExchange();
    if (in_ != nullptr) worker_.recycleBuffer(std::exchange(in_, nullptr));
    if (out_ != nullptr && unsentBytes() == 0) worker_.recycleBuffer(std::exchange(out_, nullptr));
  }
}

bool DownstreamConnection::clientDone() const {
  return exchange_ && exchange_->request_complete && bufferedBytes(in_) == 0 && !client_readable_;
}

bool DownstreamConnection::handshake() {
  switch (tlsHandshake(ssl_)) {
    case IoResult::Progress: {
      handshake_done_ = true;
      client_.listener_metrics->tls_ok.add();
      const unsigned char* protocol = nullptr;
      unsigned int length = 0;
      SSL_get0_alpn_selected(ssl_, &protocol, &length);
      if (length == 2 && protocol[0] == 'h' && protocol[1] == '2') startHttp2();
      return true;
    }
    case IoResult::WouldBlock:
      return false;  // the next edge, or the client_header timer, comes back here
    default:
      client_.listener_metrics->tls_error.add();
      closeNow();
      return false;
  }
}

bool DownstreamConnection::readClient(std::string_view& unparsed) {
  if (!client_readable_ || client_eof_ || client_error_) return false;
  if (in_ == nullptr) in_ = worker_.takeBuffer();
  if (phase_ == Phase::Lingering) evbuffer_drain(in_, bufferedBytes(in_));
  size_t cap = phase_ == Phase::AwaitingRequest
                   ? std::max<size_t>(kWindowBytes, runtime_->config().limits.max_header_bytes + 1)
                   : kWindowBytes;
  if (bufferedBytes(in_) >= cap) return false;
  size_t got = 0;
  bool head_next = phase_ == Phase::AwaitingRequest && unsentBytes() < kWindowBytes;
  switch (ssl_ ? tlsRead(ssl_, in_, cap, got, client_closing_, worker_.readScratch(),
                         client_reads_large_)
               : readInto(fd_, in_, cap, got, client_closing_, worker_.readScratch(),
                          client_reads_large_, head_next ? &unparsed : nullptr)) {
    case IoResult::WouldBlock:
      client_readable_ = false;
      break;
    case IoResult::Closed:
      client_eof_ = true;
      break;
    case IoResult::Error:
      client_error_ = true;
      break;
    case IoResult::Progress:
      break;
  }
  if (got > 0) client_activity_ = worker_.clock().now();
  return got > 0 || client_eof_ || client_error_;
}

bool DownstreamConnection::flushClient() {
  if (unsentBytes() == 0 || client_error_) return false;
  size_t written = 0;
  std::string no_head;
  IoResult r = ssl_ ? tlsWrite(ssl_, out_, written, worker_.tlsScratch())
                    : writeFrom(fd_, exchange_ ? exchange_->response_head : no_head, out_, written);
  if (r == IoResult::Error) client_error_ = true;
  if (written > 0) client_activity_ = worker_.clock().now();
  return written > 0;
}

bool DownstreamConnection::requestStarted() const {
  return exchange_ && exchange_->request_parser.started();
}

bool DownstreamConnection::parseRequestHead(std::string_view& unparsed) {
  // A client that does not read its responses gets no more of its pipelined requests served.
  if (unsentBytes() >= kWindowBytes) return false;
  if (!served_one_ && !requestStarted() && detectPreface(unparsed)) return true;
  if (!exchange_) {
    if (bufferedBytes(in_) == 0 && unparsed.empty()) {
      // Idle, nothing to parse: a client that hung up now is done.
      if (client_eof_) closeNow();
      return client_eof_;
    }
    const auto& limits = runtime_->config().limits;
    exchange_ = worker_.takeExchange(ParserLimits{limits.max_header_bytes, limits.max_headers});
    exchange_->bind(*this, client_, worker_, *runtime_, listener_);
    if (out_ == nullptr) out_ = worker_.takeBuffer();
  }
  bool was_started = exchange_->request_parser.started();
  size_t before = bufferedBytes(in_) + unparsed.size();
  BodyEncoder none;
  Http1Parser::Event ev =
      exchange_->request_parser.parse(std::exchange(unparsed, {}), in_, none, 0);
  if (!was_started && exchange_->request_parser.started())
    timer_.setIn(runtime_->config().timeouts.client_header);
  switch (ev) {
    case Http1Parser::Event::Head:
      startExchange();
      return true;
    case Http1Parser::Event::Error:
      exchange_->answer(requestErrorCause(exchange_->request_parser.errorStatus()),
                        exchange_->request_parser.errorReason());
      return true;
    default:
      if (client_eof_ && exchange_->request_parser.started() && bufferedBytes(in_) == 0) {
        // The client stopped sending (half-close) in the middle of a head.
        exchange_->answer(LocalCause::BadRequest, "the request head ended before its blank line");
        return true;
      }
      if (client_eof_) {
        closeNow();
        return true;
      }
      return bufferedBytes(in_) != before;
  }
}

bool DownstreamConnection::detectPreface(std::string_view& unparsed) {
  if (listener_ == nullptr || !listener_->config->http2.h2c || ssl_ != nullptr) return false;
  // The first bytes are in `unparsed` or in in_, never in both.
  char first[Http2Session::kPreface.size()];
  ev_ssize_t copied = unparsed.empty() && in_ != nullptr
                          ? evbuffer_copyout(in_, first, sizeof(first))
                          : static_cast<ev_ssize_t>(unparsed.copy(first, sizeof(first)));
  size_t have = copied > 0 ? static_cast<size_t>(copied) : 0;
  if (have == 0 || Http2Session::kPreface.substr(0, have) != std::string_view(first, have))
    return false;
  if (!unparsed.empty()) {
    evbuffer_add(in_, unparsed.data(), unparsed.size());
    unparsed = {};
  }
  if (have == sizeof(first)) startHttp2();
  return true;
}

void DownstreamConnection::startHttp2() {
  phase_ = Phase::Http2;
  if (in_ == nullptr) in_ = worker_.takeBuffer();
  if (out_ == nullptr) out_ = worker_.takeBuffer();
  if (exchange_) giveBackExchange();
  // OpenSSL gives back its 17 KiB read and write buffers whenever they run
  // empty (SSL_MODE_RELEASE_BUFFERS, for idle connections' sake), which a
  // connection carrying streams does between every two bursts of them: a
  // malloc and a free of each, and cold memory, for every few requests. An
  // HTTP/2 connection keeps them, and onTimer frees them once no stream has
  // been open for kTlsBufferLinger.
  if (ssl_ != nullptr) SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  h2_ = std::make_unique<Http2Session>(worker_, *this,
                                       listener_ ? listener_->config->http2 : conf::Http2Config{});
  client_activity_ = worker_.clock().now();
  timer_.setIn(runtime_->config().timeouts.client_idle);
}

bool DownstreamConnection::pumpHttp2() {
  // A reload: the client is told to take new streams to a new connection,
  // which serves them on the new configuration.
  if (worker_.runtime() != runtime_ && !close_after_response_) {
    close_after_response_ = true;
    h2_->shutdown();
  }
  bool progress = h2_->pump(in_, out_, kWindowBytes);
  // See startHttp2: the buffers go back once no stream has been open for a while.
  if (ssl_ != nullptr && !h2_->hasStreams())
    timer_.setNoLaterThan(worker_.clock().now() + kTlsBufferLinger);
  if (client_eof_ || (h2_->finished() && unsentBytes() == 0)) {
    if (ssl_ != nullptr && !client_eof_) SSL_shutdown(ssl_);  // close_notify, best effort
    closeNow();
  }
  return progress;
}

size_t DownstreamConnection::unsentBytes() const {
  return (exchange_ ? exchange_->response_head.size() : 0) + bufferedBytes(out_) +
         (ssl_ != nullptr ? tlsHeldBytes(ssl_) : 0);
}

void DownstreamConnection::giveBackExchange() {
  exchange_->release();
  worker_.recycleExchange(std::move(exchange_));
}

void DownstreamConnection::closeNow(LocalCause cause) {
  if (phase_ == Phase::Closed) return;
  if (exchange_) {
    if (cause != LocalCause::None) exchange_->cause = cause;
    exchange_->record();
    exchange_->release();
  }
  phase_ = Phase::Closed;
  h2_.reset();
  event_del(event_);
  timer_.clear();
}

}  // namespace crest::proxy
