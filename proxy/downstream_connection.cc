#include "proxy/downstream_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "health/dispatcher.h"
#include "http/header_rewrite.h"
#include "io/tls_io.h"
#include "observe/log.h"
#include "proxy/exchange.h"
#include "proxy/upstream_health.h"
#include "proxy/worker_context.h"

namespace crest::proxy {

using namespace http;
using namespace io;
using namespace observe;

namespace {

using std::chrono::milliseconds;

// Per-direction window: reading from one side stops while this much waits
// for the other side, which bounds a slow peer's cost.
constexpr size_t kHighWater = 256 * 1024;
constexpr milliseconds kLinger{2000};

// The client buffers exist only while they hold bytes or a request is being
// served (see DownstreamConnection::pump).
size_t bufferedBytes(const evbuffer* buffer) {
  return buffer != nullptr ? evbuffer_get_length(buffer) : 0;
}

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

std::optional<std::string_view> headerValue(const MessageHead& head, std::string_view name) {
  const std::string* value = head.find(name);
  if (value == nullptr) return std::nullopt;
  return std::string_view(*value);
}

// The value of cookie `name` in the request's Cookie headers.
std::optional<std::string_view> cookieValue(const MessageHead& head, const std::string& name) {
  for (const auto& f : head.headers) {
    if (!equalsIgnoreCase(f.name, "cookie")) continue;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

cache::Nanos steadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The request's headers as the cache asks for them (lower-case names).
cache::ResponseCache::RequestHeaders requestHeaders(const MessageHead& head) {
  return [&head](std::string_view name) { return headerValue(head, name); };
}

// Every value of header `name`, joined with ", " as one list.
std::string joinedValues(const MessageHead& head, std::string_view name) {
  std::string out;
  for (const auto& f : head.headers) {
    if (!equalsIgnoreCase(f.name, name)) continue;
    if (!out.empty()) out += ", ";
    out += f.value;
  }
  return out;
}

// Whether the request's validators match the stored response: If-None-Match
// first; If-Modified-Since only without it.
bool notModified(const cache::StoredResponse& entry, const MessageHead& request) {
  if (const std::string* inm = request.find("if-none-match")) {
    return cache::etagMatches(*inm, entry.etag);
  }
  const std::string* ims = request.find("if-modified-since");
  if (ims == nullptr || entry.last_modified.empty()) return false;
  auto since = cache::parseHttpDate(*ims);
  auto modified = cache::parseHttpDate(entry.last_modified);
  return since && modified && *modified <= *since;
}

// Appends a stored body: large ones by reference, holding the entry until sent.
void addStoredBody(evbuffer* out, std::shared_ptr<const cache::StoredResponse> entry) {
  const std::string& body = entry->body;
  if (body.size() < 4096) {
    evbuffer_add(out, body.data(), body.size());
    return;
  }
  auto* hold = new std::shared_ptr<const cache::StoredResponse>(std::move(entry));
  evbuffer_add_reference(
      out, body.data(), body.size(),
      [](const void*, size_t, void* arg) {
        delete static_cast<std::shared_ptr<const cache::StoredResponse>*>(arg);
      },
      hold);
}

// Why a connect failed, for the health log: "connect refused", "connect timeout 2s".
std::string connectFailure(int err, milliseconds timeout) {
  if (err == 0) return "connect timeout " + conf::formatDuration(timeout);
  if (err == ECONNREFUSED) return "connect refused";
  return std::string("connect failed: ") + std::strerror(err);
}

// Splits an absolute-form target ("http://host/path?q") into host and origin-form path.
bool splitAbsoluteForm(const std::string& target, std::string& host, std::string& path) {
  size_t scheme_end = target.find("://");
  if (scheme_end == std::string::npos || target.front() == '/') return false;
  size_t authority = scheme_end + 3;
  size_t slash = target.find_first_of("/?", authority);
  host =
      target.substr(authority, slash == std::string::npos ? std::string::npos : slash - authority);
  std::string_view rest;
  if (slash != std::string::npos) rest = std::string_view(target).substr(slash);
  path.clear();
  if (rest.empty() || rest.front() != '/') path.push_back('/');
  path.append(rest);
  return true;
}

}  // namespace

// A request waiting for something another worker may end: a slot of its
// pool's admission queue, or another request's fill of the cache entry it
// wants. The news is carried to the connection's own worker, where
// `connection` is read and cleared.
class Waiter : public limits::AdmissionTicket,
               public cache::FillWaiter,
               public std::enable_shared_from_this<Waiter> {
 public:
  Waiter(WorkerContext& worker, DownstreamConnection* waiting)
      : connection(waiting), worker_(worker) {}
  void onDecided(State state) override {
    worker_.post([self = shared_from_this(), state] {
      if (self->connection != nullptr) self->connection->onAdmissionDecided(*self, state);
    });
  }
  void onFillDone() override {
    worker_.post([self = shared_from_this()] {
      if (self->connection != nullptr) self->connection->onFillDone(*self);
    });
  }
  DownstreamConnection* connection;  // null once it stopped waiting; its worker's thread only

 private:
  WorkerContext& worker_;
};

DownstreamConnection::DownstreamConnection(WorkerContext& worker, int fd,
                                           const sockaddr_storage& peer,
                                           ListenerCells* listener_metrics, SSL* ssl)
    : worker_(worker),
      fd_(fd),
      peer_ip_(addressText(peer)),
      client_hash_(addressHash(peer)),
      listener_metrics_(listener_metrics),
      ssl_(ssl),
      timer_(worker.loop(), &DownstreamConnection::onTimer, this),
      handshake_done_(ssl == nullptr),
      client_readable_(ssl != nullptr) {
  event_ = worker_.loop().makeEvent(fd_, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET,
                                    &DownstreamConnection::onEvent, this);

  listener_metrics_->connections_active.add(1);
}

DownstreamConnection::~DownstreamConnection() {
  listener_metrics_->connections_active.add(-1);
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
}

void DownstreamConnection::onEvent(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<DownstreamConnection*>(arg);
  if (what & (EV_READ | EV_CLOSED)) self->client_readable_ = true;
  if (what & EV_CLOSED) self->client_closing_ = true;
  self->pump();
}

void DownstreamConnection::onUpstreamEvent() {
  pump();
}

void DownstreamConnection::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<DownstreamConnection*>(arg);
  if (!self->timer_.expired()) return;
  const auto& timeouts = self->runtime_->config().timeouts;
  if (self->phase_ == Phase::AwaitingRequest && self->requestStarted()) {
    self->respond(LocalCause::HeadTimeout, "the request head did not arrive within " +
                                               conf::formatDuration(timeouts.client_header));
  } else if (self->exchange_ && self->exchange_->waiter) {
    self->settleWait(self->exchange_->admission->withdraw(*self->exchange_->waiter));
  } else if (self->phase_ == Phase::Proxying) {
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

void DownstreamConnection::onUpstreamTimeout() {
  if (unsentBytes() >= kHighWater) {
    // The client, not the server, is slow: the client's own timer governs.
    exchange_->upstream->expectResponseWithin(exchange_->pool->config->timeouts.response);
    return;
  }
  onUpstreamFailure(exchange_->upstream->connected() ? UpstreamFailure::Timeout
                                                     : UpstreamFailure::Connect);
  pump();
}

void DownstreamConnection::drain() {
  close_after_response_ = true;
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
    if (!handshake_done_ && !handshake()) break;
    // A request head that comes in one read is parsed where it was read:
    // readClient leaves it in the worker's scratch memory for parseRequestHead.
    std::string_view unparsed;
    bool progress = readClient(unparsed);
    if (phase_ == Phase::AwaitingRequest) progress |= parseRequestHead(unparsed);
    // parseRequestHead takes what readClient left in the worker's scratch
    // memory; should it ever return early, the bytes must not stay there.
    if (!unparsed.empty()) evbuffer_add(in_, unparsed.data(), unparsed.size());
    // A queued request's body waits in the input buffer, behind its head.
    bool waiting = exchange_ && (exchange_->waiter || exchange_->fill_waiter);
    if (phase_ == Phase::Proxying && !waiting) progress |= forwardRequestBody();
    if (waiting && (client_eof_ || client_error_)) {
      closeNow(LocalCause::ClientClosed);  // its place in the queue goes at once
      break;
    }
    if (phase_ == Phase::Proxying && exchange_->upstream) progress |= driveUpstream();
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
    case IoResult::Progress:
      handshake_done_ = true;
      listener_metrics_->tls_ok.add();
      return true;
    case IoResult::WouldBlock:
      return false;  // the next edge, or the client_header timer, comes back here
    default:
      listener_metrics_->tls_error.add();
      closeNow();
      return false;
  }
}

bool DownstreamConnection::readClient(std::string_view& unparsed) {
  if (!client_readable_ || client_eof_ || client_error_) return false;
  if (in_ == nullptr) in_ = worker_.takeBuffer();
  if (phase_ == Phase::Lingering) evbuffer_drain(in_, bufferedBytes(in_));
  size_t cap = phase_ == Phase::AwaitingRequest
                   ? std::max<size_t>(kHighWater, runtime_->config().limits.max_header_bytes + 1)
                   : kHighWater;
  if (bufferedBytes(in_) >= cap) return false;
  size_t got = 0;
  bool head_next = phase_ == Phase::AwaitingRequest && unsentBytes() < kHighWater;
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
  IoResult r = ssl_ ? tlsWrite(ssl_, out_, written)
                    : writeFrom(fd_, exchange_ ? exchange_->response_head : no_head, out_, written);
  if (r == IoResult::Error) client_error_ = true;
  if (written > 0) client_activity_ = worker_.clock().now();
  return written > 0;
}

size_t DownstreamConnection::unsentBytes() const {
  return (exchange_ ? exchange_->response_head.size() : 0) + bufferedBytes(out_);
}

bool DownstreamConnection::requestStarted() const {
  return exchange_ && exchange_->request_parser.started();
}

bool DownstreamConnection::parseRequestHead(std::string_view& unparsed) {
  // A client that does not read its responses gets no more of its pipelined requests served.
  if (unsentBytes() >= kHighWater) return false;
  if (!exchange_) {
    if (bufferedBytes(in_) == 0 && unparsed.empty()) {
      // Idle, nothing to parse: a client that hung up now is done.
      if (client_eof_) closeNow();
      return client_eof_;
    }
    const auto& limits = runtime_->config().limits;
    exchange_ = worker_.takeExchange(ParserLimits{limits.max_header_bytes, limits.max_headers});
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
      respond(requestErrorCause(exchange_->request_parser.errorStatus()),
              exchange_->request_parser.errorReason());
      return true;
    default:
      if (client_eof_ && exchange_->request_parser.started() && bufferedBytes(in_) == 0) {
        // The client stopped sending (half-close) in the middle of a head.
        respond(LocalCause::BadRequest, "the request head ended before its blank line");
        return true;
      }
      if (client_eof_) {
        closeNow();
        return true;
      }
      return bufferedBytes(in_) != before;
  }
}

void DownstreamConnection::startExchange() {
  // New requests take the newest configuration; a listener it removed keeps
  // serving this connection on the configuration it was accepted under.
  if (worker_.runtime() != runtime_) {
    if (const ListenerRuntime* l = worker_.runtime()->findListener(listener())) {
      runtime_ = worker_.runtime();
      listener_ = l;
    }
  }
  MessageHead& head = exchange_->request_parser.head();
  if (head.underscored_fields > 0) listener_metrics_->headers_dropped.add(head.underscored_fields);
  phase_ = Phase::Proxying;
  exchange_->open = true;
  exchange_->exchange_start = worker_.clock().now();
  exchange_->response_status = 0;
  exchange_->served_by = nullptr;
  exchange_->upstream_time = {};
  const std::string* id = head.find(HeaderName::XRequestId);
  if (id != nullptr)
    exchange_->request_id = *id;
  else
    worker_.newRequestId(exchange_->request_id);
  exchange_->request_complete = false;
  exchange_->response_started = false;
  exchange_->request_bytes_sent = 0;
  exchange_->upstream_timer_started = false;
  exchange_->tried = balancer::TriedSet();
  exchange_->pool = nullptr;
  exchange_->switched_pool = false;
  exchange_->cache_result.reset();
  exchange_->coalesced = false;
  exchange_->stale.reset();
  client_activity_ = worker_.clock().now();
  timer_.setIn(runtime_->config().timeouts.client_idle);
  exchange_->response_parser.setNoBody(head.method == "HEAD");

  const std::string* host_header = head.find(HeaderName::Host);
  std::string host = host_header != nullptr ? *host_header : std::string();
  exchange_->target = head.target;
  std::string absolute_host;
  if (splitAbsoluteForm(head.target, absolute_host, exchange_->target)) {
    if (!host.empty() && hostWithoutPort(host) != hostWithoutPort(absolute_host)) {
      respond(LocalCause::BadRequest, "the request target names another host than the Host header");
      return;
    }
    host = absolute_host;
  } else if (exchange_->target.empty() ||
             (exchange_->target.front() != '/' && exchange_->target != "*")) {
    respond(LocalCause::BadRequest, "invalid request target");
    return;
  }
  const uint64_t max_body = runtime_->config().limits.max_request_body;
  if (max_body > 0 && head.framing == Framing::ContentLength && head.content_length > max_body) {
    respond(LocalCause::BodyTooLarge,
            "the request body is larger than " + std::to_string(max_body) + " bytes");
    return;
  }
  std::string normalized_host = hostWithoutPort(host);
  int route = listener_ ? listener_->router.match(normalized_host, exchange_->target, head) : -1;
  if (route < 0) {
    respond(LocalCause::NoRoute, "no route matches host \"" + normalized_host + "\" and this path");
    return;
  }
  exchange_->route_target = &listener_->routes[static_cast<size_t>(route)];
  exchange_->route = &listener_->config->routes[static_cast<size_t>(route)];
  // Every response of a cached route says what the cache did; refused before the lookup: BYPASS.
  if (exchange_->route->cache) exchange_->cache_result = CacheResult::Bypass;
  if (exchange_->route_target->rate_limiter && !checkRateLimit(*exchange_->route_target, head))
    return;
  if (exchange_->route_target->split)
    exchange_->split_key = keyHash(exchange_->route_target->split->sticky, head);
  exchange_->pool = choosePool(*exchange_->route_target);
  exchange_->retries_left = exchange_->pool->config->retries;
  if (exchange_->route->cache) exchange_->cache_host = std::move(normalized_host);
  routeToPool();
}

void DownstreamConnection::routeToPool() {
  // A hit needs no slot of the pool: the cache comes before admission.
  if (exchange_->route->cache && answerFromCache()) return;
  if (exchange_->pool->admission) {
    // Queueing for a pool that cannot serve would only delay the answer.
    if (!hasHealthyServer(*exchange_->pool)) {
      shed(ShedReason::NoHealthy,
           "no healthy server in pool \"" + exchange_->pool->config->name + "\"");
      return;
    }
    if (!admit()) return;
  }
  forwardToPool();
}

bool DownstreamConnection::answerFromCache() {
  const MessageHead& head = exchange_->request_parser.head();
  bool get = head.method == "GET";
  if ((!get && head.method != "HEAD") || head.framing != Framing::None) {
    exchange_->cache_result = CacheResult::Bypass;
    return false;
  }
  cache::ResponseCache& cache = *runtime_->cache();
  bool authorized = head.find("authorization") != nullptr;
  auto found =
      cache.find(exchange_->cache_host, exchange_->target, requestHeaders(head), steadyNanos());
  // A stored answer reaches a request with credentials only when it said public.
  if (found.entry && (!authorized || found.entry->is_public)) {
    if (found.fresh) {
      serveStored(std::move(found.entry), CacheResult::Hit);
      return true;
    }
    exchange_->stale = std::move(found.entry);
  }
  exchange_->cache_result = CacheResult::Miss;
  exchange_->pending_store.reset();
  if (!get) return false;  // HEAD is answered from GET entries, never stored
  if (!authorized && !exchange_->coalesced) {
    auto waiter = std::make_shared<Waiter>(worker_, this);
    if (!cache.joinFill(exchange_->cache_host, exchange_->target, waiter)) {
      exchange_->fill_waiter = std::move(waiter);
      return true;
    }
    exchange_->cache_leader = true;
  }
  // Marks this request as one whose response may be stored (see prepareStore).
  exchange_->pending_store = std::make_shared<cache::StoredResponse>();
  return false;
}

void DownstreamConnection::onFillDone(const Waiter& waiter) {
  if (!exchange_ || &waiter != exchange_->fill_waiter.get()) return;
  exchange_->fill_waiter->connection = nullptr;
  exchange_->fill_waiter.reset();
  // The leader's answer is in the cache, or it failed: then this request
  // makes its own attempt rather than waiting again.
  exchange_->coalesced = true;
  routeToPool();
  pump();
}

void DownstreamConnection::serveStored(std::shared_ptr<const cache::StoredResponse> entry,
                                       CacheResult result) {
  releaseExchange();
  exchange_->cache_result = result;
  const MessageHead& head = exchange_->request_parser.head();
  bool not_modified = result == CacheResult::Hit && notModified(*entry, head);
  int status = not_modified ? 304 : entry->status;
  if (!head.keep_alive || worker_.draining()) close_after_response_ = true;
  std::string extras =
      responseExtras() + "Age: " + std::to_string(entry->ageAt(steadyNanos())) + "\r\n";
  writeStoredResponseHead(status, not_modified ? "Not Modified" : std::string_view(entry->reason),
                          not_modified ? entry->not_modified_lines : entry->head_lines,
                          entry->body.size(), head.version_minor, close_after_response_, out_,
                          extras);
  uint64_t sent = 0;
  if (!not_modified && head.method != "HEAD") {
    sent = entry->body.size();
    addStoredBody(out_, std::move(entry));
  }
  finishLocalAnswer(status, sent);
}

bool DownstreamConnection::serveStale() {
  if (!exchange_->stale || steadyNanos() >= exchange_->stale->stale_until) return false;
  serveStored(exchange_->stale, CacheResult::Stale);
  return true;
}

void DownstreamConnection::prepareStore(const MessageHead& response) {
  if (!exchange_->pending_store) return;
  const MessageHead& request = exchange_->request_parser.head();
  std::string cache_control = joinedValues(response, "cache-control");
  std::string vary = joinedValues(response, "vary");
  cache::ResponseFacts facts;
  facts.status = response.status;
  facts.cache_control = cache_control;
  facts.has_set_cookie = response.find("set-cookie") != nullptr;
  facts.vary = vary;
  if (const std::string* v = response.find("expires")) facts.expires = *v;
  if (const std::string* v = response.find("date")) facts.date = *v;
  if (const std::string* v = response.find("age")) facts.age = std::atoll(v->c_str());
  auto lifetime = cache::storableLifetime(
      facts, request.find("authorization") != nullptr,
      std::chrono::duration_cast<std::chrono::nanoseconds>(exchange_->route->cache->ttl).count(),
      static_cast<int64_t>(std::time(nullptr)));
  cache::ResponseCache& cache = *runtime_->cache();
  if (!lifetime || (response.framing == Framing::ContentLength &&
                    response.content_length > cache.maxEntryBytes())) {
    exchange_->pending_store.reset();
    endCacheFill();  // the waiters need not wait for a response that will not be stored
    return;
  }
  cache::StoredResponse& e = *exchange_->pending_store;
  e.host = exchange_->cache_host;
  e.path = exchange_->target;
  for (auto& name : cache::varyNames(vary)) {
    const std::string* value = request.find(name);
    e.vary.emplace_back(std::move(name), value ? *value : std::string());
  }
  e.status = response.status;
  e.reason = response.reason;
  storedHeaderLines(response, e.head_lines, e.not_modified_lines);
  if (const std::string* v = response.find("etag")) e.etag = *v;
  if (const std::string* v = response.find("last-modified")) e.last_modified = *v;
  e.age_at_store = facts.age;
  e.is_public = cache::parseCacheControl(cache_control).is_public;
  exchange_->pending_lifetime = *lifetime;
  exchange_->pending_body.clear();
  exchange_->response_body.tap(&exchange_->pending_body, cache.maxEntryBytes());
}

void DownstreamConnection::finishStore() {
  if (exchange_->pending_store && !exchange_->response_body.tapOverflowed()) {
    cache::StoredResponse& e = *exchange_->pending_store;
    e.body = std::move(exchange_->pending_body);
    e.stored_at = steadyNanos();
    e.fresh_until = e.stored_at + exchange_->pending_lifetime;
    e.stale_until = e.fresh_until + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        exchange_->route->cache->stale)
                                        .count();
    runtime_->cache()->insert(std::move(exchange_->pending_store));
  }
  dropStore();
}

void DownstreamConnection::dropStore() {
  exchange_->pending_store.reset();
  // Swapped, not assigned: assigning an empty string keeps the memory, and
  // the exchange waits among its worker's spares with it.
  std::string().swap(exchange_->pending_body);
  endCacheFill();
}

void DownstreamConnection::endCacheFill() {
  if (exchange_->fill_waiter) {
    exchange_->fill_waiter->connection = nullptr;
    exchange_->fill_waiter.reset();
  }
  if (exchange_->cache_leader) {
    exchange_->cache_leader = false;
    runtime_->cache()->endFill(exchange_->cache_host, exchange_->target);
  }
}

std::string DownstreamConnection::responseExtras() const {
  static constexpr const char* kXCache[kCacheResults] = {
      "X-Cache: HIT\r\n", "X-Cache: MISS\r\n", "X-Cache: STALE\r\n", "X-Cache: BYPASS\r\n"};
  if (!exchange_->cache_result) return exchange_->route_headers;
  return exchange_->route_headers + kXCache[static_cast<size_t>(*exchange_->cache_result)];
}

void DownstreamConnection::forwardToPool() {
  const MessageHead& head = exchange_->request_parser.head();
  if (head.expect_continue && head.framing != Framing::None) {
    evbuffer_add(out_, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  }
  writeRequestHead();
  exchange_->request_body = BodyEncoder(exchange_->request_out, head.framing == Framing::Chunked);
  dispatch();
}

bool DownstreamConnection::checkRateLimit(const RouteTarget& target, const MessageHead& head) {
  limits::RateDecision d =
      target.rate_limiter->take(keyHash(exchange_->route->rate_limit->key, head), steadyNanos());
  exchange_->route_headers = "RateLimit-Limit: " + std::to_string(d.limit) +
                             "\r\nRateLimit-Remaining: " + std::to_string(d.remaining) +
                             "\r\nRateLimit-Reset: " + std::to_string(d.reset_seconds) + "\r\n";
  if (d.allowed) return true;
  listener_metrics_->rate_limited.add();
  std::string retry = std::to_string(d.retry_after);
  respondWith(LocalCause::RateLimited, describe(LocalCause::RateLimited).status,
              "text/plain; charset=utf-8", "rate limit exceeded: retry in " + retry + " s\n",
              "Retry-After: " + retry + "\r\n");
  return false;
}

bool DownstreamConnection::admit() {
  exchange_->admission = exchange_->pool->admission;
  auto waiter = std::make_shared<Waiter>(worker_, this);
  switch (exchange_->admission->enter(waiter, exchange_->route_target->priority)) {
    case limits::AdmissionQueue::Entry::Admitted:
      exchange_->holds_slot = true;
      return true;
    case limits::AdmissionQueue::Entry::Queued:
      exchange_->waiter = std::move(waiter);
      timer_.setIn(exchange_->pool->config->queue->timeout);
      return false;
    case limits::AdmissionQueue::Entry::Refused:
      break;
  }
  exchange_->admission.reset();
  shed(ShedReason::QueueFull,
       "pool \"" + exchange_->pool->config->name + "\" is busy and its queue is full");
  return false;
}

void DownstreamConnection::onAdmissionDecided(const Waiter& waiter,
                                              limits::AdmissionTicket::State state) {
  if (!exchange_ || &waiter != exchange_->waiter.get())
    return;  // settled already (timed out, closed)
  settleWait(state);
  pump();
}

void DownstreamConnection::settleWait(limits::AdmissionTicket::State state) {
  using State = limits::AdmissionTicket::State;
  exchange_->waiter->connection = nullptr;
  exchange_->waiter.reset();
  if (state == State::Granted) {
    exchange_->holds_slot = true;
    client_activity_ = worker_.clock().now();
    timer_.setIn(runtime_->config().timeouts.client_idle);
    forwardToPool();
    return;
  }
  exchange_->admission.reset();
  if (state == State::Shed) {
    shed(ShedReason::QueueFull, "pool \"" + exchange_->pool->config->name +
                                    "\" is busy: a more important request took this place");
  } else {
    shed(ShedReason::QueueTimeout,
         "pool \"" + exchange_->pool->config->name + "\" had no free slot within " +
             conf::formatDuration(exchange_->pool->config->queue->timeout));
  }
}

void DownstreamConnection::endAdmission() {
  if (exchange_->waiter) {
    auto state = exchange_->admission->withdraw(*exchange_->waiter);
    exchange_->waiter->connection = nullptr;
    exchange_->waiter.reset();
    exchange_->holds_slot = state == limits::AdmissionTicket::State::Granted;
  }
  if (exchange_->holds_slot) exchange_->admission->leave(exchange_->route_target->priority);
  exchange_->holds_slot = false;
  exchange_->admission.reset();
}

void DownstreamConnection::shed(ShedReason reason, std::string_view why) {
  exchange_->pool->metrics->shed[static_cast<size_t>(reason)].add();
  static constexpr LocalCause kCauses[kShedReasons] = {
      LocalCause::QueueFull, LocalCause::QueueTimeout, LocalCause::NoHealthyServer};
  LocalCause cause = kCauses[static_cast<size_t>(reason)];
  if (exchange_->route == nullptr || !exchange_->route->fallback) {
    respond(cause, why, "Retry-After: 1\r\n");
    return;
  }
  if (serveStale()) return;
  const conf::Fallback& fallback = *exchange_->route->fallback;
  bool retry_later = fallback.status == 503 || fallback.status == 429;
  respondWith(cause, fallback.status, fallback.content_type, fallback.body,
              retry_later ? "Retry-After: 1\r\n" : "");
}

uint64_t DownstreamConnection::keyHash(const conf::RequestKey& key, const MessageHead& head) {
  switch (key.kind) {
    case conf::RequestKey::Kind::None:
      return worker_.random();
    case conf::RequestKey::Kind::ClientIp:
      return client_hash_;
    case conf::RequestKey::Kind::Cookie:
    case conf::RequestKey::Kind::Header: {
      // Without the cookie or header, the client address identifies the client.
      auto value = key.kind == conf::RequestKey::Kind::Cookie ? cookieValue(head, key.name)
                                                              : headerValue(head, key.name);
      return value ? balancer::hashBytes(value->data(), value->size()) : client_hash_;
    }
  }
  return client_hash_;
}

const PoolRuntime* DownstreamConnection::choosePool(const RouteTarget& target) {
  if (!target.split) return target.pool;
  const SplitRuntime& split = *target.split;
  size_t chosen = split.weights.pick(exchange_->split_key);
  if (hasHealthyServer(*split.pools[chosen])) return split.pools[chosen];
  // The chosen pool (typically the canary) is down: its users go to the others.
  size_t fallback = split.weights.pickUsable(
      exchange_->split_key, [&](size_t i) { return hasHealthyServer(*split.pools[i]); });
  if (fallback == split.pools.size())
    return split.pools[chosen];  // none healthy: its 503 says which
  // Counted, not logged: under load a down canary would flood the log; its
  // servers' state changes are logged once by the health checks.
  split.pools[chosen]->metrics->split_fallbacks.add();
  return split.pools[fallback];
}

void DownstreamConnection::writeRequestHead() {
  const std::string& default_host =
      exchange_->pool->servers.empty() ? listener() : exchange_->pool->servers.front()->address;
  ForwardInfo info{peer_ip_, ssl_ ? "https" : "http", exchange_->request_id, default_host};
  exchange_->request_head =
      writeUpstreamRequestHead(exchange_->request_parser.head(), exchange_->target, info);
}

void DownstreamConnection::dispatch() {
  while (true) {
    balancer::Server* picked =
        exchange_->pool->balancer->pick(balancer::PickContext{client_hash_}, exchange_->tried);
    if (picked == nullptr && exchange_->route_target->split && !exchange_->switched_pool) {
      // Every server of the split's chosen pool failed (and was ejected): the
      // request may still be served by another pool of the split, once.
      const PoolRuntime* other = choosePool(*exchange_->route_target);
      if (other != exchange_->pool) {
        exchange_->pool->metrics->split_fallbacks.add();
        exchange_->switched_pool = true;
        exchange_->pool = other;
        exchange_->tried = balancer::TriedSet();
        exchange_->retries_left = exchange_->pool->config->retries;
        continue;
      }
    }
    if (picked == nullptr) {
      std::string why =
          exchange_->tried.size() == 0
              ? "no healthy server in pool \"" + exchange_->pool->config->name + "\""
              : "no server of pool \"" + exchange_->pool->config->name + "\" could be reached";
      if (exchange_->tried.size() == 0) {
        shed(ShedReason::NoHealthy, why);
      } else {
        respond(LocalCause::ConnectFailed, why);
      }
      return;
    }
    exchange_->tried.add(picked);
    auto* server = static_cast<UpstreamServer*>(picked);
    int connect_errno = 0;
    exchange_->upstream = worker_.upstreamPool().acquire(
        server->shared_from_this(), exchange_->pool->config->timeouts, connect_errno);
    if (exchange_->upstream) {
      exchange_->server = server;
      exchange_->server->active_requests.fetch_add(1, std::memory_order_relaxed);
      exchange_->upstream_start = worker_.clock().now();
      exchange_->upstream->attach(this);
      exchange_->upstream->countRequest();
      return;
    }
    ejectServer(*server, connectFailure(connect_errno, exchange_->pool->config->timeouts.connect));
    if (exchange_->retries_left == 0) {
      respond(LocalCause::ConnectFailed,
              "cannot connect to a server of pool \"" + exchange_->pool->config->name + "\"");
      return;
    }
    --exchange_->retries_left;
  }
}

bool DownstreamConnection::forwardRequestBody() {
  if (exchange_->request_complete) return false;
  size_t buffered = evbuffer_get_length(exchange_->request_out);
  if (buffered >= kHighWater) return false;
  size_t before = bufferedBytes(in_);
  Http1Parser::Event ev =
      exchange_->request_parser.parse(in_, exchange_->request_body, kHighWater - buffered);
  const uint64_t max_body = runtime_->config().limits.max_request_body;
  if (max_body > 0 && exchange_->request_parser.bodyBytes() > max_body) {
    if (exchange_->response_started) {
      closeNow(LocalCause::BodyTooLarge);
    } else {
      respond(LocalCause::BodyTooLarge,
              "the request body is larger than " + std::to_string(max_body) + " bytes");
    }
    return true;
  }
  switch (ev) {
    case Http1Parser::Event::Complete:
      exchange_->request_complete = true;
      return true;
    case Http1Parser::Event::Error:
      if (exchange_->response_started) {
        closeNow(requestErrorCause(exchange_->request_parser.errorStatus()));
      } else {
        respond(requestErrorCause(exchange_->request_parser.errorStatus()),
                exchange_->request_parser.errorReason());
      }
      return true;
    default:
      if (client_eof_ && bufferedBytes(in_) == 0) {
        // The client went away in the middle of its request body.
        closeNow(LocalCause::ClientClosed);
        return true;
      }
      return bufferedBytes(in_) != before;
  }
}

bool DownstreamConnection::driveUpstream() {
  if (exchange_->upstream->state() == UpstreamConnection::State::Failed) {
    onUpstreamFailure(UpstreamFailure::Connect);
    return true;
  }
  if (exchange_->upstream->state() == UpstreamConnection::State::Connecting) return false;
  if (!exchange_->upstream_timer_started) {
    exchange_->upstream_timer_started = true;
    exchange_->upstream->expectResponseWithin(exchange_->pool->config->timeouts.response);
  }
  bool progress = false;
  size_t pending = exchange_->request_head.size() + evbuffer_get_length(exchange_->request_out);
  if (pending > 0) {
    if (!exchange_->upstream->flush(exchange_->request_head, exchange_->request_out)) {
      onUpstreamFailure(UpstreamFailure::Broken);
      return true;
    }
    size_t sent =
        pending - exchange_->request_head.size() - evbuffer_get_length(exchange_->request_out);
    exchange_->request_bytes_sent += sent;
    progress = sent > 0;
  }
  while (exchange_->upstream && phase_ == Phase::Proxying) {
    size_t out_bytes = unsentBytes();
    if (out_bytes >= kHighWater) break;
    // A response head that came in one read is parsed where it was read.
    std::string_view fresh;
    exchange_->upstream->pullInput(kHighWater, worker_.readScratch(),
                                   exchange_->response_parser.awaitingHead() ? &fresh : nullptr);
    evbuffer* input = exchange_->upstream->input();
    size_t before = evbuffer_get_length(input) + fresh.size();
    Http1Parser::Event ev = exchange_->response_parser.parse(fresh, input, exchange_->response_body,
                                                             kHighWater - out_bytes);
    size_t after = evbuffer_get_length(input);
    progress |= after != before;
    if (ev == Http1Parser::Event::NeedMore &&
        (exchange_->upstream->peerClosed() || exchange_->upstream->broken()) && after == 0) {
      if (!exchange_->response_started) {
        onUpstreamFailure(UpstreamFailure::Broken);
        return true;
      }
      ev = exchange_->response_parser.finishAtEof(exchange_->response_body);
      if (ev == Http1Parser::Event::Error) {
        // Cut short: close before the response's framing ends, so the client
        // can tell it is incomplete.
        closeNow(LocalCause::UpstreamReset);
        return true;
      }
    }
    if (ev == Http1Parser::Event::Head) {
      int status = exchange_->response_parser.head().status;
      if (status < 200) {
        if (status == 101) {
          // crest forwards no Upgrade, so a switch of protocols answers nothing
          // it asked: what follows would be another protocol's bytes.
          invalidResponse("101 Switching Protocols to a request that did not ask to upgrade");
          return true;
        }
        exchange_->response_parser.nextMessage();  // 1xx: interim, not forwarded
      } else {
        onResponseHead();
      }
      progress = true;
      continue;
    }
    if (ev == Http1Parser::Event::Complete) {
      onResponseComplete();
      return true;
    }
    if (ev == Http1Parser::Event::Error) {
      invalidResponse(exchange_->response_parser.errorReason());
      return true;
    }
    if (after == before) break;
  }
  return progress;
}

void DownstreamConnection::invalidResponse(std::string_view why) {
  log::warn("upstream: pool " + exchange_->pool->config->name + " server " +
            exchange_->server->address + ": invalid response: " + std::string(why));
  if (exchange_->response_started) {
    closeNow(LocalCause::UpstreamReset);
  } else {
    onUpstreamFailure(UpstreamFailure::Invalid);
  }
}

void DownstreamConnection::onResponseHead() {
  const MessageHead& request = exchange_->request_parser.head();
  const MessageHead& response = exchange_->response_parser.head();
  // A failing pool: an expired entry within its stale time answers instead.
  if (response.status >= 500 && serveStale()) return;
  bool unframed = response.framing == Framing::Chunked || response.framing == Framing::UntilClose;
  bool chunked = unframed && request.version_minor >= 1;
  if (!request.keep_alive || worker_.draining() || (unframed && !chunked))
    close_after_response_ = true;
  std::string_view head = writeDownstreamResponseHead(response, request.version_minor, chunked,
                                                      close_after_response_, responseExtras());
  // Behind bytes that wait in out_, the head waits there too; TLS writes out_ only.
  if (ssl_ == nullptr && bufferedBytes(out_) == 0) {
    exchange_->response_head.append(head);
  } else {
    evbuffer_add(out_, head.data(), head.size());
  }
  exchange_->response_status = response.status;
  exchange_->served_by = exchange_->server;
  exchange_->server->metrics->responses[statusClass(response.status)].add();
  exchange_->response_body = BodyEncoder(out_, chunked);
  exchange_->response_started = true;
  prepareStore(response);
}

void DownstreamConnection::onResponseComplete() {
  const MessageHead& response = exchange_->response_parser.head();
  exchange_->upstream_time = worker_.clock().now() - exchange_->upstream_start;
  bool reusable = response.keep_alive && exchange_->request_complete &&
                  exchange_->request_head.empty() &&
                  evbuffer_get_length(exchange_->request_out) == 0 &&
                  evbuffer_get_length(exchange_->upstream->input()) == 0 &&
                  !exchange_->upstream->peerClosed() && !exchange_->upstream->broken();
  releaseServer();
  endAdmission();
  finishStore();
  exchange_->upstream->stopTimer();
  if (reusable) {
    worker_.upstreamPool().release(std::move(exchange_->upstream),
                                   exchange_->pool->config->timeouts.idle);
  } else {
    exchange_->upstream.reset();
  }
  // A response that ends before its request does: the rest of the request
  // body cannot be skipped safely, so the connection ends with this response.
  if (!exchange_->request_complete) {
    recordExchange();
    close_after_response_ = true;
    phase_ = Phase::Closing;
    return;
  }
  finishExchange();
}

void DownstreamConnection::onUpstreamFailure(UpstreamFailure failure) {
  bool was_reused = exchange_->upstream && exchange_->upstream->reused() &&
                    exchange_->upstream->connected() &&
                    evbuffer_get_length(exchange_->upstream->input()) == 0;
  if (failure == UpstreamFailure::Connect && exchange_->server != nullptr) {
    ejectServer(*exchange_->server,
                connectFailure(exchange_->upstream ? exchange_->upstream->connectError() : 0,
                               exchange_->pool->config->timeouts.connect));
  }
  releaseServer();
  exchange_->upstream.reset();
  if (exchange_->response_started) {
    closeNow(LocalCause::UpstreamReset);
    return;
  }
  const MessageHead& request = exchange_->request_parser.head();
  const std::string& pool = exchange_->pool->config->name;
  switch (failure) {
    case UpstreamFailure::Connect:
      if (exchange_->retries_left > 0 && exchange_->request_bytes_sent == 0) {
        --exchange_->retries_left;
        dispatch();
        return;
      }
      respond(LocalCause::ConnectFailed, "cannot connect to a server of pool \"" + pool + "\"");
      return;
    case UpstreamFailure::Broken:
      // A kept-alive connection the server closed while we were reusing it:
      // the request never reached the server, so it goes out again on a fresh
      // connection (bodiless requests only: a streamed body is gone).
      if (was_reused && request.framing == Framing::None) {
        writeRequestHead();
        exchange_->request_bytes_sent = 0;
        exchange_->tried = balancer::TriedSet();
        dispatch();
        return;
      }
      if (exchange_->retries_left > 0 && idempotent(request.method) &&
          request.framing == Framing::None) {
        --exchange_->retries_left;
        writeRequestHead();
        exchange_->request_bytes_sent = 0;
        dispatch();
        return;
      }
      respond(LocalCause::UpstreamClosed,
              "the server of pool \"" + pool + "\" closed the connection without a response");
      return;
    case UpstreamFailure::Timeout:
      respond(LocalCause::UpstreamTimeout,
              "the server of pool \"" + pool + "\" did not answer within " +
                  conf::formatDuration(exchange_->pool->config->timeouts.response));
      return;
    case UpstreamFailure::Invalid:
      respond(LocalCause::InvalidResponse,
              "invalid response from the server of pool \"" + pool + "\"");
      return;
  }
}

void DownstreamConnection::releaseExchange() {
  if (!exchange_) return;
  releaseServer();
  exchange_->upstream.reset();
  endAdmission();
  dropStore();
}

void DownstreamConnection::giveBackExchange() {
  releaseExchange();
  worker_.recycleExchange(std::move(exchange_));
}

void DownstreamConnection::releaseServer() {
  if (exchange_->server == nullptr) return;
  exchange_->server->active_requests.fetch_sub(1, std::memory_order_relaxed);
  exchange_->server = nullptr;
}

void DownstreamConnection::respond(LocalCause cause, std::string_view message,
                                   std::string_view extra_headers) {
  const LocalCauseInfo& info = describe(cause);
  if (info.pool_failed && serveStale()) return;
  std::string body(message);
  body.push_back('\n');
  respondWith(cause, info.status, "text/plain; charset=utf-8", body, extra_headers);
}

void DownstreamConnection::respondWith(LocalCause cause, int status, std::string_view content_type,
                                       std::string_view body, std::string_view extra_headers) {
  releaseExchange();
  exchange_->cause = cause;
  // The connection goes on only after a refusal of a request that is wholly
  // read: after anything malformed, or with an unread body that cannot be
  // told apart from a next request, it closes.
  bool request_read =
      exchange_->request_complete ||
      (phase_ == Phase::Proxying && exchange_->request_parser.head().framing == Framing::None);
  if (phase_ != Phase::Proxying || describe(cause).request_fault || !request_read ||
      !exchange_->request_parser.head().keep_alive || worker_.draining()) {
    close_after_response_ = true;
  }
  std::string headers(extra_headers);
  if (phase_ == Phase::Proxying) headers += responseExtras();
  writeProxyResponse(status, content_type, body, close_after_response_, out_, headers);
  finishLocalAnswer(status, body.size());
}

void DownstreamConnection::finishLocalAnswer(int status, uint64_t body_bytes) {
  exchange_->response_started = true;
  exchange_->response_status = status;
  exchange_->response_bytes = body_bytes;
  exchange_->served_by = nullptr;
  if (!exchange_->open) {
    // Refused before it became an exchange (malformed head, 408): counted with pool="".
    exchange_->open = true;
    exchange_->exchange_start = worker_.clock().now();
    exchange_->pool = nullptr;
    exchange_->request_id.clear();
  }
  if (close_after_response_) {
    recordExchange();
    phase_ = Phase::Closing;
    return;
  }
  exchange_->request_complete = true;
  finishExchange();
}

void DownstreamConnection::recordExchange() {
  if (!exchange_ || !exchange_->open || listener_ == nullptr) return;
  exchange_->open = false;
  if (exchange_->response_status == 0) return;  // the client left before any response
  size_t pool = exchange_->pool ? exchange_->pool->index : listener_->request_cells.size() - 1;
  RequestCells* cells = listener_->request_cells[pool];
  auto total = worker_.clock().now() - exchange_->exchange_start;
  cells->responses[statusClass(exchange_->response_status)].add();
  cells->duration.observe(total);
  if (exchange_->cache_result)
    (*runtime_->cacheResults())[static_cast<size_t>(*exchange_->cache_result)].add();
  if (AccessLogWriter* log = worker_.accessLog()) {
    const MessageHead& head = exchange_->request_parser.head();
    AccessRecord r;
    r.client = peer_ip_;
    r.listener = listener();
    r.method = head.method.empty() ? "-" : std::string_view(head.method);
    r.target = head.target.empty() ? "-" : std::string_view(head.target);
    r.version_minor = head.version_minor;
    r.status = exchange_->response_status;
    r.bytes =
        exchange_->served_by ? exchange_->response_parser.bodyBytes() : exchange_->response_bytes;
    r.total = total;
    if (exchange_->pool) r.pool = exchange_->pool->config->name;
    if (exchange_->served_by) {
      r.upstream = exchange_->served_by->address;
      // A response cut short has no end time of its own: it ends now.
      r.upstream_time = exchange_->upstream_time.count()
                            ? exchange_->upstream_time
                            : worker_.clock().now() - exchange_->upstream_start;
    }
    r.request_id = exchange_->request_id;
    r.cause = describe(exchange_->cause).log_name;
    log->append(r);
  }
}

void DownstreamConnection::finishExchange() {
  recordExchange();
  if (close_after_response_ || worker_.draining()) {
    phase_ = Phase::Closing;
    return;
  }
  served_one_ = true;
  exchange_->request_parser.nextMessage();
  exchange_->response_parser.nextMessage();
  exchange_->pool = nullptr;
  exchange_->route = nullptr;
  exchange_->route_headers.clear();
  exchange_->cache_result.reset();
  exchange_->stale.reset();
  exchange_->cause = LocalCause::None;
  phase_ = Phase::AwaitingRequest;
  timer_.setIn(bufferedBytes(in_) > 0 ? runtime_->config().timeouts.client_header
                                      : runtime_->config().timeouts.client_idle);
}

void DownstreamConnection::closeNow(LocalCause cause) {
  if (phase_ == Phase::Closed) return;
  if (exchange_ && cause != LocalCause::None) exchange_->cause = cause;
  recordExchange();
  phase_ = Phase::Closed;
  releaseExchange();
  event_del(event_);
  timer_.clear();
}

}  // namespace crest::proxy
