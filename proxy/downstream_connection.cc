#include "proxy/downstream_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "health/dispatcher.h"
#include "proxy/header_rewrite.h"
#include "proxy/health_reporter.h"
#include "proxy/log.h"
#include "proxy/tls_io.h"
#include "proxy/worker.h"

namespace crest::proxy {

namespace {

using std::chrono::milliseconds;

// Per-direction window: reading from one side stops while this much waits
// for the other side, which bounds a slow peer's cost.
constexpr size_t kHighWater = 256 * 1024;
constexpr milliseconds kLinger{2000};

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
  Waiter(Worker& worker, DownstreamConnection* waiting) : connection(waiting), worker_(worker) {}
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
  Worker& worker_;
};

DownstreamConnection::DownstreamConnection(Worker& worker, int fd, const sockaddr_storage& peer,
                                           std::string listener, ListenerCells* listener_metrics,
                                           SSL* ssl)
    : worker_(worker),
      fd_(fd),
      in_(evbuffer_new()),
      out_(evbuffer_new()),
      peer_ip_(addressText(peer)),
      client_hash_(addressHash(peer)),
      listener_name_(std::move(listener)),
      listener_metrics_(listener_metrics),
      ssl_(ssl),
      handshake_done_(ssl == nullptr),
      timer_(worker.base(), &DownstreamConnection::onTimer, this) {
  event_ = event_new(worker_.base(), fd_, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET,
                     &DownstreamConnection::onEvent, this);

  listener_metrics_->connections_active.add(1);
}

DownstreamConnection::~DownstreamConnection() {
  listener_metrics_->connections_active.add(-1);
  releaseExchange();
  event_free(event_);
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
  evbuffer_free(in_);
  evbuffer_free(out_);
  if (request_out_ != nullptr) evbuffer_free(request_out_);
}

void DownstreamConnection::start() {
  runtime_ = worker_.runtime();
  listener_ = runtime_->findListener(listener_name_);
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
    self->respond(408, "the request head did not arrive within " +
                           conf::formatDuration(timeouts.client_header));
  } else if (self->waiter_) {
    self->settleWait(self->admission_->withdraw(*self->waiter_));
  } else if (self->phase_ == Phase::Proxying) {
    // Inactivity of the client while it owes us body bytes or reading; I/O
    // only notes the time, the deadline follows it here.
    auto idle_until = self->client_activity_ + timeouts.client_idle;
    if (std::chrono::steady_clock::now() < idle_until) {
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
  if (evbuffer_get_length(out_) >= kHighWater) {
    // The client, not the server, is slow: the client's own timer governs.
    upstream_->expectResponseWithin(pool_->config->timeouts.response);
    return;
  }
  onUpstreamFailure(upstream_->connected() ? UpstreamFailure::Timeout : UpstreamFailure::Connect);
  pump();
}

void DownstreamConnection::drain() {
  close_after_response_ = true;
  if (phase_ == Phase::AwaitingRequest && !requestStarted()) closeNow();
  pump();
}

void DownstreamConnection::abort() {
  closeNow();
  pump();
}

void DownstreamConnection::pump() {
  while (phase_ != Phase::Closed) {
    if (!handshake_done_ && !handshake()) break;
    bool progress = readClient();
    if (phase_ == Phase::AwaitingRequest) progress |= parseRequestHead();
    // A queued request's body waits in the input buffer, behind its head.
    bool waiting = waiter_ || fill_waiter_;
    if (phase_ == Phase::Proxying && !waiting) progress |= forwardRequestBody();
    if (waiting && (client_eof_ || client_error_)) {
      closeNow();  // its client left: its place in the queue goes at once
      break;
    }
    if (phase_ == Phase::Proxying && upstream_) progress |= driveUpstream();
    progress |= flushClient();
    if (client_error_ && phase_ != Phase::Closed) {
      closeNow();
      break;
    }
    if (phase_ == Phase::Closing && evbuffer_get_length(out_) == 0) {
      // Lingering close: stop sending, keep reading what the client still sends
      // for a while, so our last response is not destroyed by a reset.
      if (ssl_ != nullptr && handshake_done_) SSL_shutdown(ssl_);  // close_notify, best effort
      ::shutdown(fd_, SHUT_WR);
      phase_ = Phase::Lingering;
      timer_.setIn(kLinger);
      progress = true;
    }
    if (phase_ == Phase::Lingering && client_eof_) closeNow();
    if (!progress) break;
  }
  if (phase_ == Phase::Closed) worker_.connectionClosed(this);  // deletes this
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

bool DownstreamConnection::readClient() {
  if (!client_readable_ || client_eof_ || client_error_) return false;
  if (phase_ == Phase::Lingering) evbuffer_drain(in_, evbuffer_get_length(in_));
  size_t cap = phase_ == Phase::AwaitingRequest
                   ? std::max<size_t>(kHighWater, runtime_->config().limits.max_header_bytes + 1)
                   : kHighWater;
  if (evbuffer_get_length(in_) >= cap) return false;
  size_t got = 0;
  switch (ssl_ ? tlsRead(ssl_, in_, cap, got) : readInto(fd_, in_, cap, got, client_closing_)) {
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
  if (got > 0) client_activity_ = std::chrono::steady_clock::now();
  return got > 0 || client_eof_ || client_error_;
}

bool DownstreamConnection::flushClient() {
  if (evbuffer_get_length(out_) == 0 || client_error_) return false;
  size_t written = 0;
  IoResult r = ssl_ ? tlsWrite(ssl_, out_, written) : writeFrom(fd_, out_, written);
  if (r == IoResult::Error) client_error_ = true;
  if (written > 0) client_activity_ = std::chrono::steady_clock::now();
  return written > 0;
}

bool DownstreamConnection::parseRequestHead() {
  // A client that does not read its responses gets no more of its pipelined requests served.
  if (evbuffer_get_length(out_) >= kHighWater) return false;
  if (!request_parser_) {
    if (evbuffer_get_length(in_) == 0) {
      // Idle, nothing to parse: a client that hung up now is done.
      if (client_eof_) closeNow();
      return client_eof_;
    }
    const auto& limits = runtime_->config().limits;
    request_parser_ = std::make_unique<Http1Parser>(
        Http1Parser::Kind::Request, ParserLimits{limits.max_header_bytes, limits.max_headers});
  }
  bool was_started = request_parser_->started();
  size_t before = evbuffer_get_length(in_);
  BodyEncoder none;
  Http1Parser::Event ev = request_parser_->parse(in_, none, 0);
  if (!was_started && request_parser_->started())
    timer_.setIn(runtime_->config().timeouts.client_header);
  switch (ev) {
    case Http1Parser::Event::Head:
      startExchange();
      return true;
    case Http1Parser::Event::Error:
      respond(request_parser_->errorStatus(), request_parser_->errorReason());
      return true;
    default:
      if (client_eof_ && request_parser_->started() && evbuffer_get_length(in_) == 0) {
        // The client stopped sending (half-close) in the middle of a head.
        respond(400, "the request head ended before its blank line");
        return true;
      }
      if (client_eof_) {
        closeNow();
        return true;
      }
      return evbuffer_get_length(in_) != before;
  }
}

void DownstreamConnection::startExchange() {
  // New requests take the newest configuration; a listener it removed keeps
  // serving this connection on the configuration it was accepted under.
  if (worker_.runtime() != runtime_) {
    if (const ListenerRuntime* l = worker_.runtime()->findListener(listener_name_)) {
      runtime_ = worker_.runtime();
      listener_ = l;
    }
  }
  MessageHead& head = request_parser_->head();
  phase_ = Phase::Proxying;
  exchange_open_ = true;
  exchange_start_ = std::chrono::steady_clock::now();
  response_status_ = 0;
  served_by_ = nullptr;
  upstream_time_ = {};
  const std::string* id = head.find("x-request-id");
  request_id_ = id ? *id : worker_.newRequestId();
  request_complete_ = false;
  response_started_ = false;
  request_bytes_sent_ = 0;
  upstream_timer_started_ = false;
  tried_ = balancer::TriedSet();
  pool_ = nullptr;
  switched_pool_ = false;
  cache_result_.reset();
  coalesced_ = false;
  stale_.reset();
  client_activity_ = std::chrono::steady_clock::now();
  timer_.setIn(runtime_->config().timeouts.client_idle);
  if (!response_parser_) {
    response_parser_ = std::make_unique<Http1Parser>(Http1Parser::Kind::Response, ParserLimits{});
  }
  if (request_out_ == nullptr) request_out_ = evbuffer_new();
  response_parser_->setNoBody(head.method == "HEAD");

  std::string host = head.find("host") ? *head.find("host") : std::string();
  target_ = head.target;
  std::string absolute_host;
  if (splitAbsoluteForm(head.target, absolute_host, target_)) {
    if (!host.empty() && hostWithoutPort(host) != hostWithoutPort(absolute_host)) {
      respond(400, "the request target names another host than the Host header");
      return;
    }
    host = absolute_host;
  } else if (target_.empty() || (target_.front() != '/' && target_ != "*")) {
    respond(400, "invalid request target");
    return;
  }
  const uint64_t max_body = runtime_->config().limits.max_request_body;
  if (max_body > 0 && head.framing == Framing::ContentLength && head.content_length > max_body) {
    respond(413, "the request body is larger than " + std::to_string(max_body) + " bytes");
    return;
  }
  std::string normalized_host = hostWithoutPort(host);
  int route = listener_ ? listener_->router.match(normalized_host, target_, head) : -1;
  if (route < 0) {
    respond(404, "no route matches host \"" + normalized_host + "\" and this path");
    return;
  }
  route_target_ = &listener_->routes[static_cast<size_t>(route)];
  route_ = &listener_->config->routes[static_cast<size_t>(route)];
  // Every response of a cached route says what the cache did; refused before the lookup: BYPASS.
  if (route_->cache) cache_result_ = CacheResult::Bypass;
  if (route_target_->rate_limiter && !checkRateLimit(*route_target_, head)) return;
  if (route_target_->split) split_key_ = keyHash(route_target_->split->sticky, head);
  pool_ = choosePool(*route_target_);
  retries_left_ = pool_->config->retries;
  if (route_->cache) cache_host_ = std::move(normalized_host);
  routeToPool();
}

void DownstreamConnection::routeToPool() {
  // A hit needs no slot of the pool: the cache comes before admission.
  if (route_->cache && answerFromCache()) return;
  if (pool_->admission) {
    // Queueing for a pool that cannot serve would only delay the answer.
    if (!hasHealthyServer(*pool_)) {
      shed(ShedReason::NoHealthy, "no healthy server in pool \"" + pool_->config->name + "\"");
      return;
    }
    if (!admit()) return;
  }
  forwardToPool();
}

bool DownstreamConnection::answerFromCache() {
  const MessageHead& head = request_parser_->head();
  bool get = head.method == "GET";
  if ((!get && head.method != "HEAD") || head.framing != Framing::None) {
    cache_result_ = CacheResult::Bypass;
    return false;
  }
  cache::ResponseCache& cache = *runtime_->cache();
  bool authorized = head.find("authorization") != nullptr;
  auto found = cache.find(cache_host_, target_, requestHeaders(head), steadyNanos());
  // A stored answer reaches a request with credentials only when it said public.
  if (found.entry && (!authorized || found.entry->is_public)) {
    if (found.fresh) {
      serveStored(std::move(found.entry), CacheResult::Hit);
      return true;
    }
    stale_ = std::move(found.entry);
  }
  cache_result_ = CacheResult::Miss;
  pending_store_.reset();
  if (!get) return false;  // HEAD is answered from GET entries, never stored
  if (!authorized && !coalesced_) {
    auto waiter = std::make_shared<Waiter>(worker_, this);
    if (!cache.joinFill(cache_host_, target_, waiter)) {
      fill_waiter_ = std::move(waiter);
      return true;
    }
    cache_leader_ = true;
  }
  // Marks this request as one whose response may be stored (see prepareStore).
  pending_store_ = std::make_shared<cache::StoredResponse>();
  return false;
}

void DownstreamConnection::onFillDone(const Waiter& waiter) {
  if (&waiter != fill_waiter_.get()) return;
  fill_waiter_->connection = nullptr;
  fill_waiter_.reset();
  // The leader's answer is in the cache, or it failed: then this request
  // makes its own attempt rather than waiting again.
  coalesced_ = true;
  routeToPool();
  pump();
}

void DownstreamConnection::serveStored(std::shared_ptr<const cache::StoredResponse> entry,
                                       CacheResult result) {
  releaseExchange();
  cache_result_ = result;
  const MessageHead& head = request_parser_->head();
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
  if (!stale_ || steadyNanos() >= stale_->stale_until) return false;
  serveStored(stale_, CacheResult::Stale);
  return true;
}

void DownstreamConnection::prepareStore(const MessageHead& response) {
  if (!pending_store_) return;
  const MessageHead& request = request_parser_->head();
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
      std::chrono::duration_cast<std::chrono::nanoseconds>(route_->cache->ttl).count(),
      static_cast<int64_t>(std::time(nullptr)));
  cache::ResponseCache& cache = *runtime_->cache();
  if (!lifetime || (response.framing == Framing::ContentLength &&
                    response.content_length > cache.maxEntryBytes())) {
    pending_store_.reset();
    endCacheFill();  // the waiters need not wait for a response that will not be stored
    return;
  }
  cache::StoredResponse& e = *pending_store_;
  e.host = cache_host_;
  e.path = target_;
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
  pending_lifetime_ = *lifetime;
  pending_body_.clear();
  response_body_.tap(&pending_body_, cache.maxEntryBytes());
}

void DownstreamConnection::finishStore() {
  if (pending_store_ && !response_body_.tapOverflowed()) {
    cache::StoredResponse& e = *pending_store_;
    e.body = std::move(pending_body_);
    e.stored_at = steadyNanos();
    e.fresh_until = e.stored_at + pending_lifetime_;
    e.stale_until =
        e.fresh_until +
        std::chrono::duration_cast<std::chrono::nanoseconds>(route_->cache->stale).count();
    runtime_->cache()->insert(std::move(pending_store_));
  }
  pending_store_.reset();
  pending_body_ = std::string();
  endCacheFill();
}

void DownstreamConnection::endCacheFill() {
  if (fill_waiter_) {
    fill_waiter_->connection = nullptr;
    fill_waiter_.reset();
  }
  if (cache_leader_) {
    cache_leader_ = false;
    runtime_->cache()->endFill(cache_host_, target_);
  }
}

std::string DownstreamConnection::responseExtras() const {
  static constexpr const char* kXCache[kCacheResults] = {
      "X-Cache: HIT\r\n", "X-Cache: MISS\r\n", "X-Cache: STALE\r\n", "X-Cache: BYPASS\r\n"};
  if (!cache_result_) return route_headers_;
  return route_headers_ + kXCache[static_cast<size_t>(*cache_result_)];
}

void DownstreamConnection::forwardToPool() {
  const MessageHead& head = request_parser_->head();
  if (head.expect_continue && head.framing != Framing::None) {
    evbuffer_add(out_, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  }
  writeRequestHead();
  request_body_ = BodyEncoder(request_out_, head.framing == Framing::Chunked);
  dispatch();
}

bool DownstreamConnection::checkRateLimit(const RouteTarget& target, const MessageHead& head) {
  limits::RateDecision d =
      target.rate_limiter->take(keyHash(route_->rate_limit->key, head), steadyNanos());
  route_headers_ = "RateLimit-Limit: " + std::to_string(d.limit) +
                   "\r\nRateLimit-Remaining: " + std::to_string(d.remaining) +
                   "\r\nRateLimit-Reset: " + std::to_string(d.reset_seconds) + "\r\n";
  if (d.allowed) return true;
  listener_metrics_->rate_limited.add();
  std::string retry = std::to_string(d.retry_after);
  respondWith(429, "text/plain; charset=utf-8", "rate limit exceeded: retry in " + retry + " s\n",
              "Retry-After: " + retry + "\r\n", false);
  return false;
}

bool DownstreamConnection::admit() {
  admission_ = pool_->admission;
  auto waiter = std::make_shared<Waiter>(worker_, this);
  switch (admission_->enter(waiter, route_target_->priority)) {
    case limits::AdmissionQueue::Entry::Admitted:
      holds_slot_ = true;
      return true;
    case limits::AdmissionQueue::Entry::Queued:
      waiter_ = std::move(waiter);
      timer_.setIn(pool_->config->queue->timeout);
      return false;
    case limits::AdmissionQueue::Entry::Refused:
      break;
  }
  admission_.reset();
  shed(ShedReason::QueueFull, "pool \"" + pool_->config->name + "\" is busy and its queue is full");
  return false;
}

void DownstreamConnection::onAdmissionDecided(const Waiter& waiter,
                                              limits::AdmissionTicket::State state) {
  if (&waiter != waiter_.get()) return;  // settled already (timed out, closed)
  settleWait(state);
  pump();
}

void DownstreamConnection::settleWait(limits::AdmissionTicket::State state) {
  using State = limits::AdmissionTicket::State;
  waiter_->connection = nullptr;
  waiter_.reset();
  if (state == State::Granted) {
    holds_slot_ = true;
    client_activity_ = std::chrono::steady_clock::now();
    timer_.setIn(runtime_->config().timeouts.client_idle);
    forwardToPool();
    return;
  }
  admission_.reset();
  if (state == State::Shed) {
    shed(ShedReason::QueueFull,
         "pool \"" + pool_->config->name + "\" is busy: a more important request took this place");
  } else {
    shed(ShedReason::QueueTimeout, "pool \"" + pool_->config->name + "\" had no free slot within " +
                                       conf::formatDuration(pool_->config->queue->timeout));
  }
}

void DownstreamConnection::endAdmission() {
  if (waiter_) {
    auto state = admission_->withdraw(*waiter_);
    waiter_->connection = nullptr;
    waiter_.reset();
    holds_slot_ = state == limits::AdmissionTicket::State::Granted;
  }
  if (holds_slot_) admission_->leave();
  holds_slot_ = false;
  admission_.reset();
}

void DownstreamConnection::shed(ShedReason reason, std::string_view why) {
  pool_->metrics->shed[static_cast<size_t>(reason)].add();
  if (serveStale()) return;
  if (route_ == nullptr || !route_->fallback) {
    respond(503, why, "Retry-After: 1\r\n");
    return;
  }
  const conf::Fallback& fallback = *route_->fallback;
  bool retry_later = fallback.status == 503 || fallback.status == 429;
  respondWith(fallback.status, fallback.content_type, fallback.body,
              retry_later ? "Retry-After: 1\r\n" : "", false);
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
  size_t chosen = split.weights.pick(split_key_);
  if (hasHealthyServer(*split.pools[chosen])) return split.pools[chosen];
  // The chosen pool (typically the canary) is down: its users go to the others.
  size_t fallback = split.weights.pickUsable(
      split_key_, [&](size_t i) { return hasHealthyServer(*split.pools[i]); });
  if (fallback == split.pools.size())
    return split.pools[chosen];  // none healthy: its 503 says which
  // Counted, not logged: under load a down canary would flood the log; its
  // servers' state changes are logged once by the health checks.
  split.pools[chosen]->metrics->split_fallbacks.add();
  return split.pools[fallback];
}

void DownstreamConnection::writeRequestHead() {
  evbuffer_drain(request_out_, evbuffer_get_length(request_out_));
  const std::string& default_host =
      pool_->servers.empty() ? listener_name_ : pool_->servers.front()->address;
  ForwardInfo info{peer_ip_, ssl_ ? "https" : "http", request_id_, default_host};
  writeUpstreamRequestHead(request_parser_->head(), target_, info, request_out_);
}

void DownstreamConnection::dispatch() {
  while (true) {
    balancer::Server* picked = pool_->balancer->pick(balancer::PickContext{client_hash_}, tried_);
    if (picked == nullptr && route_target_->split && !switched_pool_) {
      // Every server of the split's chosen pool failed (and was ejected): the
      // request may still be served by another pool of the split, once.
      const PoolRuntime* other = choosePool(*route_target_);
      if (other != pool_) {
        pool_->metrics->split_fallbacks.add();
        switched_pool_ = true;
        pool_ = other;
        tried_ = balancer::TriedSet();
        retries_left_ = pool_->config->retries;
        continue;
      }
    }
    if (picked == nullptr) {
      std::string why = tried_.size() == 0
                            ? "no healthy server in pool \"" + pool_->config->name + "\""
                            : "no server of pool \"" + pool_->config->name + "\" could be reached";
      if (tried_.size() == 0) {
        shed(ShedReason::NoHealthy, why);
      } else {
        respond(502, why);
      }
      return;
    }
    tried_.add(picked);
    auto* server = static_cast<UpstreamServer*>(picked);
    int connect_errno = 0;
    upstream_ = worker_.upstreamPool().acquire(server->shared_from_this(), pool_->config->timeouts,
                                               connect_errno);
    if (upstream_) {
      server_ = server;
      server_->active_requests.fetch_add(1, std::memory_order_relaxed);
      upstream_start_ = std::chrono::steady_clock::now();
      upstream_->attach(this);
      upstream_->countRequest();
      return;
    }
    ejectServer(*server, connectFailure(connect_errno, pool_->config->timeouts.connect));
    if (retries_left_ == 0) {
      respond(502, "cannot connect to a server of pool \"" + pool_->config->name + "\"");
      return;
    }
    --retries_left_;
  }
}

bool DownstreamConnection::forwardRequestBody() {
  if (request_complete_) return false;
  size_t buffered = evbuffer_get_length(request_out_);
  if (buffered >= kHighWater) return false;
  size_t before = evbuffer_get_length(in_);
  Http1Parser::Event ev = request_parser_->parse(in_, request_body_, kHighWater - buffered);
  const uint64_t max_body = runtime_->config().limits.max_request_body;
  if (max_body > 0 && request_parser_->bodyBytes() > max_body) {
    if (response_started_) {
      closeNow();
    } else {
      respond(413, "the request body is larger than " + std::to_string(max_body) + " bytes");
    }
    return true;
  }
  switch (ev) {
    case Http1Parser::Event::Complete:
      request_complete_ = true;
      return true;
    case Http1Parser::Event::Error:
      if (response_started_) {
        closeNow();
      } else {
        respond(request_parser_->errorStatus(), request_parser_->errorReason());
      }
      return true;
    default:
      if (client_eof_ && evbuffer_get_length(in_) == 0) {
        // The client went away in the middle of its request body.
        closeNow();
        return true;
      }
      return evbuffer_get_length(in_) != before;
  }
}

bool DownstreamConnection::driveUpstream() {
  if (upstream_->state() == UpstreamConnection::State::Failed) {
    onUpstreamFailure(UpstreamFailure::Connect);
    return true;
  }
  if (upstream_->state() == UpstreamConnection::State::Connecting) return false;
  if (!upstream_timer_started_) {
    upstream_timer_started_ = true;
    upstream_->expectResponseWithin(pool_->config->timeouts.response);
  }
  bool progress = false;
  size_t pending = evbuffer_get_length(request_out_);
  if (pending > 0) {
    if (!upstream_->flush(request_out_)) {
      onUpstreamFailure(UpstreamFailure::Broken);
      return true;
    }
    size_t sent = pending - evbuffer_get_length(request_out_);
    request_bytes_sent_ += sent;
    progress = sent > 0;
  }
  while (upstream_ && phase_ == Phase::Proxying) {
    if (evbuffer_get_length(out_) >= kHighWater) break;
    upstream_->pullInput(kHighWater);
    evbuffer* input = upstream_->input();
    size_t before = evbuffer_get_length(input);
    Http1Parser::Event ev =
        response_parser_->parse(input, response_body_, kHighWater - evbuffer_get_length(out_));
    progress |= evbuffer_get_length(input) != before;
    if (ev == Http1Parser::Event::NeedMore && (upstream_->peerClosed() || upstream_->broken()) &&
        evbuffer_get_length(input) == 0) {
      if (!response_started_) {
        onUpstreamFailure(UpstreamFailure::Broken);
        return true;
      }
      ev = response_parser_->finishAtEof(response_body_);
      if (ev == Http1Parser::Event::Error) {
        // Cut short: close before the response's framing ends, so the client
        // can tell it is incomplete.
        closeNow();
        return true;
      }
    }
    if (ev == Http1Parser::Event::Head) {
      if (response_parser_->head().status < 200) {
        response_parser_->nextMessage();  // 1xx: interim, not forwarded
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
      log::warn("upstream: pool " + pool_->config->name + " server " + server_->address +
                ": invalid response: " + response_parser_->errorReason());
      if (response_started_) {
        closeNow();
      } else {
        onUpstreamFailure(UpstreamFailure::Invalid);
      }
      return true;
    }
    if (evbuffer_get_length(input) == before) break;
  }
  return progress;
}

void DownstreamConnection::onResponseHead() {
  const MessageHead& request = request_parser_->head();
  const MessageHead& response = response_parser_->head();
  // A failing pool: an expired entry within its stale time answers instead.
  if (response.status >= 500 && serveStale()) return;
  bool unframed = response.framing == Framing::Chunked || response.framing == Framing::UntilClose;
  bool chunked = unframed && request.version_minor >= 1;
  if (!request.keep_alive || worker_.draining() || (unframed && !chunked))
    close_after_response_ = true;
  writeDownstreamResponseHead(response, request.version_minor, chunked, close_after_response_, out_,
                              responseExtras());
  response_status_ = response.status;
  served_by_ = server_;
  server_->metrics->responses[statusClass(response.status)].add();
  response_body_ = BodyEncoder(out_, chunked);
  response_started_ = true;
  prepareStore(response);
}

void DownstreamConnection::onResponseComplete() {
  const MessageHead& response = response_parser_->head();
  upstream_time_ = std::chrono::steady_clock::now() - upstream_start_;
  bool reusable = response.keep_alive && request_complete_ &&
                  evbuffer_get_length(request_out_) == 0 &&
                  evbuffer_get_length(upstream_->input()) == 0 && !upstream_->peerClosed() &&
                  !upstream_->broken();
  releaseServer();
  endAdmission();
  finishStore();
  upstream_->stopTimer();
  if (reusable) {
    worker_.upstreamPool().release(std::move(upstream_), pool_->config->timeouts.idle);
  } else {
    upstream_.reset();
  }
  // A response that ends before its request does: the rest of the request
  // body cannot be skipped safely, so the connection ends with this response.
  if (!request_complete_) {
    recordExchange();
    close_after_response_ = true;
    phase_ = Phase::Closing;
    return;
  }
  finishExchange();
}

void DownstreamConnection::onUpstreamFailure(UpstreamFailure failure) {
  bool was_reused = upstream_ && upstream_->reused() && upstream_->connected() &&
                    evbuffer_get_length(upstream_->input()) == 0;
  if (failure == UpstreamFailure::Connect && server_ != nullptr) {
    ejectServer(*server_, connectFailure(upstream_ ? upstream_->connectError() : 0,
                                         pool_->config->timeouts.connect));
  }
  releaseServer();
  upstream_.reset();
  if (response_started_) {
    closeNow();
    return;
  }
  const MessageHead& request = request_parser_->head();
  const std::string& pool = pool_->config->name;
  switch (failure) {
    case UpstreamFailure::Connect:
      if (retries_left_ > 0 && request_bytes_sent_ == 0) {
        --retries_left_;
        dispatch();
        return;
      }
      respond(502, "cannot connect to a server of pool \"" + pool + "\"");
      return;
    case UpstreamFailure::Broken:
      // A kept-alive connection the server closed while we were reusing it:
      // the request never reached the server, so it goes out again on a fresh
      // connection (bodiless requests only: a streamed body is gone).
      if (was_reused && request.framing == Framing::None) {
        writeRequestHead();
        request_bytes_sent_ = 0;
        tried_ = balancer::TriedSet();
        dispatch();
        return;
      }
      if (retries_left_ > 0 && idempotent(request.method) && request.framing == Framing::None) {
        --retries_left_;
        writeRequestHead();
        request_bytes_sent_ = 0;
        dispatch();
        return;
      }
      respond(502, "the server of pool \"" + pool + "\" closed the connection without a response");
      return;
    case UpstreamFailure::Timeout:
      respond(504, "the server of pool \"" + pool + "\" did not answer within " +
                       conf::formatDuration(pool_->config->timeouts.response));
      return;
    case UpstreamFailure::Invalid:
      respond(502, "invalid response from the server of pool \"" + pool + "\"");
      return;
  }
}

void DownstreamConnection::releaseExchange() {
  releaseServer();
  upstream_.reset();
  endAdmission();
  endCacheFill();
  pending_store_.reset();
}

void DownstreamConnection::releaseServer() {
  if (server_ == nullptr) return;
  server_->active_requests.fetch_sub(1, std::memory_order_relaxed);
  server_ = nullptr;
}

void DownstreamConnection::respond(int status, std::string_view message,
                                   std::string_view extra_headers) {
  bool pool_failed = status == 502 || status == 503 || status == 504;
  if (pool_failed && serveStale()) return;
  bool request_fault = status != 404 && !pool_failed;
  std::string body(message);
  body.push_back('\n');
  respondWith(status, "text/plain; charset=utf-8", body, extra_headers, request_fault);
}

void DownstreamConnection::respondWith(int status, std::string_view content_type,
                                       std::string_view body, std::string_view extra_headers,
                                       bool request_fault) {
  releaseExchange();
  // The connection goes on only after a refusal of a request that is wholly
  // read: after anything malformed, or with an unread body that cannot be
  // told apart from a next request, it closes.
  bool request_read = request_complete_ || (phase_ == Phase::Proxying &&
                                            request_parser_->head().framing == Framing::None);
  if (phase_ != Phase::Proxying || request_fault || !request_read ||
      !request_parser_->head().keep_alive || worker_.draining()) {
    close_after_response_ = true;
  }
  std::string headers(extra_headers);
  if (phase_ == Phase::Proxying) headers += responseExtras();
  writeProxyResponse(status, content_type, body, close_after_response_, out_, headers);
  finishLocalAnswer(status, body.size());
}

void DownstreamConnection::finishLocalAnswer(int status, uint64_t body_bytes) {
  response_started_ = true;
  response_status_ = status;
  response_bytes_ = body_bytes;
  served_by_ = nullptr;
  if (!exchange_open_) {
    // Refused before it became an exchange (malformed head, 408): counted with pool="".
    exchange_open_ = true;
    exchange_start_ = std::chrono::steady_clock::now();
    pool_ = nullptr;
    request_id_.clear();
  }
  if (close_after_response_) {
    recordExchange();
    phase_ = Phase::Closing;
    return;
  }
  request_complete_ = true;
  finishExchange();
}

void DownstreamConnection::recordExchange() {
  if (!exchange_open_ || listener_ == nullptr) return;
  exchange_open_ = false;
  if (response_status_ == 0) return;  // the client left before any response
  size_t pool = pool_ ? pool_->index : listener_->request_cells.size() - 1;
  RequestCells* cells = listener_->request_cells[pool];
  auto total = std::chrono::steady_clock::now() - exchange_start_;
  cells->responses[statusClass(response_status_)].add();
  cells->duration.observe(total);
  if (cache_result_) (*runtime_->cacheResults())[static_cast<size_t>(*cache_result_)].add();
  if (AccessLogWriter* log = worker_.accessLog()) {
    const MessageHead& head = request_parser_->head();
    AccessRecord r;
    r.client = peer_ip_;
    r.listener = listener_name_;
    r.method = head.method.empty() ? "-" : std::string_view(head.method);
    r.target = head.target.empty() ? "-" : std::string_view(head.target);
    r.version_minor = head.version_minor;
    r.status = response_status_;
    r.bytes = served_by_ ? response_parser_->bodyBytes() : response_bytes_;
    r.total = total;
    if (pool_) r.pool = pool_->config->name;
    if (served_by_) {
      r.upstream = served_by_->address;
      // A response cut short has no end time of its own: it ends now.
      r.upstream_time = upstream_time_.count() ? upstream_time_
                                               : std::chrono::steady_clock::now() - upstream_start_;
    }
    r.request_id = request_id_;
    log->append(r);
  }
}

void DownstreamConnection::finishExchange() {
  recordExchange();
  if (close_after_response_ || worker_.draining()) {
    phase_ = Phase::Closing;
    return;
  }
  if (evbuffer_get_length(in_) == 0) {
    // Idle until the client asks again, maybe for a long time: hold no
    // per-request memory meanwhile.
    response_parser_.reset();
    request_parser_.reset();
    evbuffer_free(request_out_);
    request_out_ = nullptr;
    std::string().swap(request_id_);
  } else {
    request_parser_->nextMessage();
    response_parser_->nextMessage();
  }
  pool_ = nullptr;
  route_ = nullptr;
  route_headers_.clear();
  cache_result_.reset();
  stale_.reset();
  phase_ = Phase::AwaitingRequest;
  timer_.setIn(evbuffer_get_length(in_) > 0 ? runtime_->config().timeouts.client_header
                                            : runtime_->config().timeouts.client_idle);
}

void DownstreamConnection::closeNow() {
  if (phase_ == Phase::Closed) return;
  recordExchange();
  phase_ = Phase::Closed;
  releaseExchange();
  event_del(event_);
  timer_.clear();
}

}  // namespace crest::proxy
