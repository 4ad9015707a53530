#include "proxy/exchange.h"

#include "observe/access_log.h"
#include "proxy/waiter.h"

namespace crest::proxy {

using namespace http;
using namespace observe;

void Waiter::onDecided(State state) {
  context_.post([self = shared_from_this(), state] {
    if (self->exchange != nullptr) self->exchange->onAdmissionDecided(*self, state);
  });
}

void Waiter::onFillDone() {
  context_.post([self = shared_from_this()] {
    if (self->exchange != nullptr) self->exchange->onFillDone(*self);
  });
}

Exchange::Exchange(ParserLimits request_limits)
    : request_parser(Http1Parser::Kind::Request, request_limits),
      response_parser(Http1Parser::Kind::Response, ParserLimits{}),
      request_out(evbuffer_new()) {}

Exchange::~Exchange() {
  evbuffer_free(request_out);
}

void Exchange::restart(ParserLimits request_limits) {
  reset();
  request_parser.restart(request_limits);
  response_parser.restart(ParserLimits{});
  request_head.clear();
  evbuffer_drain(request_out, evbuffer_get_length(request_out));
  response_head.clear();
  client_ = nullptr;
  client_info_ = nullptr;
}

void Exchange::bind(ExchangeClient& client, const ClientInfo& info, ExchangeContext& context,
                    const Runtime& runtime, const ListenerRuntime* listener) {
  client_ = &client;
  client_info_ = &info;
  client_address_ = &info.peer;
  context_ = &context;
  runtime_ = &runtime;
  listener_ = listener;
}

void Exchange::reset() {
  rate_limit.reset();
  fault.reset();
  cache.reset();
  upstream.reset();  // admission's release leaves it as new
  request_body = BodyEncoder();
  response_body = BodyEncoder();
  route_target = nullptr;
  route = nullptr;
  open = false;
  request_complete = false;
  response_started = false;
  response_status = 0;
  response_bytes = 0;
  cause = LocalCause::None;
}

void Exchange::begin() {
  if (request().underscored_fields > 0)
    client_info_->listener_metrics->headers_dropped.add(request().underscored_fields);
  open = true;
  start = context_->now();
  client_address_ = &client_info_->peer;
  if (listener_ != nullptr && !listener_->config->trusted_proxies.empty())
    findForwardedClient(listener_->config->trusted_proxies);
  if (const std::string* id = request().find(HeaderName::XRequestId))
    request_id = *id;
  else
    context_->newRequestId(request_id);
  response_parser.setNoBody(request().method == "HEAD");
}

void Exchange::serve(std::string host) {
  if (target.empty() || (target.front() != '/' && target != "*")) {
    answer(LocalCause::BadRequest, "invalid request target");
    return;
  }
  if (request().framing == Framing::ContentLength && !bodyWithinLimit(request().content_length))
    return;
  if (matchRoute(std::move(host))) runStages(Stage::Access);
}

void Exchange::findForwardedClient(const std::vector<conf::CidrBlock>& trusted) {
  if (!conf::anyContains(trusted, client_info_->peer.address)) return;
  // The entries of every X-Forwarded-For field, in order: the nearest hop last.
  std::vector<std::string_view> hops;
  for (const auto& f : request().headers) {
    if (f.id != HeaderName::XForwardedFor) continue;
    std::string_view list = f.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view hop = list.substr(0, comma);
      while (!hop.empty() && (hop.front() == ' ' || hop.front() == '\t')) hop.remove_prefix(1);
      while (!hop.empty() && (hop.back() == ' ' || hop.back() == '\t')) hop.remove_suffix(1);
      hops.push_back(hop);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  // Right to left past trusted proxies (NGINX's real_ip_recursive, Envoy's
  // trusted hops); an entry that is not an address ends the walk.
  sockaddr_storage client{};
  bool found = false;
  for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
    sockaddr_storage address{};
    if (!io::parseAddress(*hop, address)) break;
    client = address;
    found = true;
    if (!conf::anyContains(trusted, address)) break;
  }
  if (!found) return;
  forwarded_client_.set(client);
  client_address_ = &forwarded_client_;
}

bool Exchange::matchRoute(std::string host) {
  int index = listener_ ? listener_->router.match(host, target, request()) : -1;
  if (index < 0) {
    answer(LocalCause::NoRoute, "no route matches host \"" + host + "\" and this path");
    return false;
  }
  route_target = &listener_->routes[static_cast<size_t>(index)];
  route = &listener_->config->routes[static_cast<size_t>(index)];
  cache.enterRoute(*this, std::move(host));
  return true;
}

void Exchange::runStages(Stage from) {
  // Each stage either lets the request go on to the next, answers it, or
  // makes it wait; a wait resumes here at the stage that is next. Response
  // hooks run in the order the response meets them (UpstreamStage), and
  // release() in reverse.
  switch (from) {
    case Stage::Access:
      if (access.onRequest(*this) != StageResult::Continue) return;
      [[fallthrough]];
    case Stage::RateLimit:
      if (rate_limit.onRequest(*this) != StageResult::Continue) return;
      [[fallthrough]];
    case Stage::ChoosePool:
      upstream.choosePool(*this);
      [[fallthrough]];
    case Stage::Fault:
      if (fault.onRequest(*this) != StageResult::Continue) return;
      [[fallthrough]];
    case Stage::Cache:
      if (cache.onRequest(*this) != StageResult::Continue) return;
      [[fallthrough]];
    case Stage::Admission:
      if (admission.onRequest(*this) != StageResult::Continue) return;
      [[fallthrough]];
    case Stage::Upstream:
      upstream.onRequest(*this);
  }
}

void Exchange::onAdmissionDecided(const Waiter& waiter, limits::AdmissionTicket::State state) {
  if (!admission.decided(*this, waiter, state)) return;  // settled already (timed out, closed)
  client_->wake();
}

void Exchange::onFillDone(const Waiter& waiter) {
  if (!cache.endWait(waiter)) return;
  // The leader's answer is in the cache, or it failed: then this request
  // makes its own attempt rather than waiting again.
  runStages(Stage::Cache);
  client_->wake();
}

void Exchange::onWaitTimeout() {
  if (fault.delaying()) {
    fault.onDelayOver(*this);
  } else {
    admission.onWaitTimeout(*this);
  }
}

void Exchange::onUpstreamEvent() {
  client_->wake();
}

void Exchange::onUpstreamTimeout() {
  if (upstream.onTimeout(*this)) client_->wake();
}

void Exchange::answer(LocalCause cause_of, std::string_view message,
                      std::string_view extra_headers) {
  const LocalCauseInfo& info = describe(cause_of);
  if (info.pool_failed && cache.serveStale(*this)) return;
  std::string body(message);
  body.push_back('\n');
  answerWith(cause_of, info.status, "text/plain; charset=utf-8", body, extra_headers);
}

void Exchange::answerWith(LocalCause cause_of, int status, std::string_view content_type,
                          std::string_view body, std::string_view extra_headers) {
  release();
  cause = cause_of;
  std::string headers(extra_headers);
  if (open) headers += responseExtras();
  client_->sendLocalResponse(cause_of, status, content_type, body, headers);
  answered(status, body.size());
}

void Exchange::refuse(LocalCause cause_of, std::string_view message) {
  if (response_started) {
    client_->reset(cause_of);
  } else {
    answer(cause_of, message);
  }
}

bool Exchange::bodyWithinLimit(uint64_t body_bytes) {
  const uint64_t max_body = runtime_->config().limits.max_request_body;
  if (max_body == 0 || body_bytes <= max_body) return true;
  refuse(LocalCause::BodyTooLarge,
         "the request body is larger than " + std::to_string(max_body) + " bytes");
  return false;
}

void Exchange::shed(ShedReason reason, std::string_view why) {
  upstream.pool()->metrics->shed[static_cast<size_t>(reason)].add();
  static constexpr LocalCause kCauses[kShedReasons] = {
      LocalCause::QueueFull, LocalCause::QueueTimeout, LocalCause::NoHealthyServer};
  LocalCause shed_cause = kCauses[static_cast<size_t>(reason)];
  if (route == nullptr || !route->fallback) {
    answer(shed_cause, why, "Retry-After: 1\r\n");
    return;
  }
  if (cache.serveStale(*this)) return;
  const conf::Fallback& fallback = *route->fallback;
  bool retry_later = fallback.status == 503 || fallback.status == 429;
  answerWith(shed_cause, fallback.status, fallback.content_type, fallback.body,
             retry_later ? "Retry-After: 1\r\n" : "");
}

void Exchange::answered(int status, uint64_t body_bytes) {
  response_started = true;
  response_status = status;
  response_bytes = body_bytes;
  upstream.forgetServer();
  if (!open) {
    // Refused before it became an exchange (malformed head, 408): counted with pool="".
    open = true;
    start = context_->now();
    upstream.forgetPool();
    request_id.clear();
  }
  complete();
}

void Exchange::complete() {
  record();
  mirror.release(*this);  // before the client readies the exchange for its next request
  client_->exchangeDone();
}

void Exchange::record() {
  if (!open || listener_ == nullptr) return;
  open = false;
  if (response_status == 0) return;  // the client left before any response
  const PoolRuntime* pool = upstream.pool();
  RequestCells* cells =
      listener_->request_cells[pool ? pool->index : listener_->request_cells.size() - 1];
  auto now = context_->now();
  auto total = now - start;
  cells->responses[statusClass(response_status)].add();
  // A tunnel's life is not a response time: the histogram gets its handshake.
  cells->duration.observe(upstream.tunneling() ? upstream.tunnelOpenedAt() - start : total);
  const MessageHead& head = request();
  ClientProtocol protocol = head.version_major == 2   ? ClientProtocol::Http2
                            : head.version_minor == 0 ? ClientProtocol::Http10
                                                      : ClientProtocol::Http11;
  client_info_->listener_metrics->requests[static_cast<size_t>(protocol)].add();
  if (cache.result()) (*runtime_->cacheResults())[static_cast<size_t>(*cache.result())].add();
  AccessLogWriter* log = context_->accessLog();
  if (log == nullptr) return;
  const UpstreamServer* served_by = upstream.servedBy();
  AccessRecord r;
  r.client = clientAddress().ip;
  r.listener = client_info_->listener();
  r.method = head.method.empty() ? "-" : std::string_view(head.method);
  r.target = head.target.empty() ? "-" : std::string_view(head.target);
  r.version_major = head.version_major;
  r.version_minor = head.version_minor;
  r.status = response_status;
  r.bytes = served_by ? response_parser.bodyBytes() : response_bytes;
  if (upstream.tunneling()) {
    r.tunnel = true;
    r.bytes = upstream.tunnelBytesToClient();
    r.from_client = upstream.tunnelBytesFromClient();
  }
  r.total = total;
  if (pool) r.pool = pool->config->name;
  if (served_by) {
    r.upstream = served_by->address;
    r.upstream_time = upstream.timeAt(now);
  }
  r.request_id = request_id;
  r.cause = describe(cause).log_name;
  log->append(r);
}

void Exchange::release() {
  upstream.release();
  admission.release();
  cache.release(*this);
  rate_limit.release();
  mirror.release(*this);
}

std::string Exchange::responseExtras() const {
  std::string_view x_cache = cache.responseLine();
  std::string lines = rate_limit.responseLines();
  lines.append(x_cache);
  return lines;
}

}  // namespace crest::proxy
