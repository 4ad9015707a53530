#include "proxy/cache_stage.h"

#include <ctime>

#include "http/header_rewrite.h"
#include "proxy/exchange.h"
#include "proxy/request_key.h"
#include "proxy/waiter.h"

namespace crest::proxy {

using namespace http;
using observe::CacheResult;

namespace {

cache::Nanos nanosOf(std::chrono::milliseconds duration) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
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

}  // namespace

void CacheStage::enterRoute(Exchange& exchange, std::string host) {
  if (!exchange.route->cache) return;
  result_ = CacheResult::Bypass;
  host_ = std::move(host);
}

StageResult CacheStage::onRequest(Exchange& exchange) {
  if (!exchange.route->cache) return StageResult::Continue;
  const MessageHead& head = exchange.request();
  bool get = head.method == "GET";
  if ((!get && head.method != "HEAD") || head.framing != Framing::None || head.upgrade_websocket) {
    result_ = CacheResult::Bypass;
    return StageResult::Continue;
  }
  cache::ResponseCache& cache = *exchange.runtime().cache();
  bool authorized = head.find("authorization") != nullptr;
  auto found = cache.find(
      host_, exchange.target, [&head](std::string_view name) { return headerValue(head, name); },
      exchange.context().nanos());
  // A stored answer reaches a request with credentials only when it said public.
  if (found.entry && (!authorized || found.entry->is_public)) {
    if (found.fresh) {
      serveStored(exchange, std::move(found.entry), CacheResult::Hit);
      return StageResult::Answered;
    }
    stale_ = std::move(found.entry);
  }
  result_ = CacheResult::Miss;
  pending_.reset();
  if (!get) return StageResult::Continue;  // HEAD is answered from GET entries, never stored
  if (!authorized && !coalesced_) {
    auto waiter = std::make_shared<Waiter>(exchange.context(), &exchange);
    if (!cache.joinFill(host_, exchange.target, waiter)) {
      fill_waiter_ = std::move(waiter);
      return StageResult::Waiting;
    }
    leader_ = true;
  }
  // Marks this request as one whose response may be stored (see onResponseHead).
  pending_ = std::make_shared<cache::StoredResponse>();
  return StageResult::Continue;
}

bool CacheStage::endWait(const Waiter& waiter) {
  if (&waiter != fill_waiter_.get()) return false;
  fill_waiter_->exchange = nullptr;
  fill_waiter_.reset();
  coalesced_ = true;
  return true;
}

void CacheStage::serveStored(Exchange& exchange, std::shared_ptr<const cache::StoredResponse> entry,
                             CacheResult result) {
  exchange.release();
  result_ = result;
  const MessageHead& head = exchange.request();
  bool not_modified = result == CacheResult::Hit && notModified(*entry, head);
  int status = not_modified ? 304 : entry->status;
  std::string extras = exchange.responseExtras() +
                       "Age: " + std::to_string(entry->ageAt(exchange.context().nanos())) + "\r\n";
  bool with_body = !not_modified && head.method != "HEAD";
  uint64_t sent = with_body ? entry->body.size() : 0;
  std::string_view reason = not_modified ? "Not Modified" : std::string_view(entry->reason);
  std::string_view lines = not_modified ? entry->not_modified_lines : entry->head_lines;
  // The entry outlives the call: the client holds it while its body is sent.
  exchange.client().sendStoredResponse(status, reason, lines, std::move(entry), with_body, extras);
  exchange.answered(status, sent);
}

bool CacheStage::serveStale(Exchange& exchange) {
  if (!stale_ || exchange.context().nanos() >= stale_->stale_until) return false;
  serveStored(exchange, stale_, CacheResult::Stale);
  return true;
}

void CacheStage::onResponseHead(Exchange& exchange, const MessageHead& response) {
  if (!pending_) return;
  const MessageHead& request = exchange.request();
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
  auto lifetime = cache::storableLifetime(facts, request.find("authorization") != nullptr,
                                          nanosOf(exchange.route->cache->ttl),
                                          static_cast<int64_t>(std::time(nullptr)));
  cache::ResponseCache& cache = *exchange.runtime().cache();
  if (!lifetime || (response.framing == Framing::ContentLength &&
                    response.content_length > cache.maxEntryBytes())) {
    pending_.reset();
    endFill(exchange);  // the waiters need not wait for a response that will not be stored
    return;
  }
  cache::StoredResponse& e = *pending_;
  e.host = host_;
  e.path = exchange.target;
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
  exchange.response_body.tap(&pending_body_, cache.maxEntryBytes());
}

void CacheStage::onResponseComplete(Exchange& exchange) {
  if (pending_ && !exchange.response_body.tapOverflowed()) {
    cache::StoredResponse& e = *pending_;
    e.body = std::move(pending_body_);
    e.stored_at = exchange.context().nanos();
    e.fresh_until = e.stored_at + pending_lifetime_;
    e.stale_until = e.fresh_until + nanosOf(exchange.route->cache->stale);
    exchange.runtime().cache()->insert(std::move(pending_));
  }
  release(exchange);
}

void CacheStage::release(Exchange& exchange) {
  pending_.reset();
  // Swapped, not assigned: assigning an empty string keeps the memory, and
  // the exchange waits among its worker's spares with it.
  std::string().swap(pending_body_);
  endFill(exchange);
}

void CacheStage::endFill(Exchange& exchange) {
  if (fill_waiter_) {
    fill_waiter_->exchange = nullptr;
    fill_waiter_.reset();
  }
  if (leader_) {
    leader_ = false;
    exchange.runtime().cache()->endFill(host_, exchange.target);
  }
}

std::string_view CacheStage::responseLine() const {
  static constexpr std::string_view kXCache[observe::kCacheResults] = {
      "X-Cache: HIT\r\n", "X-Cache: MISS\r\n", "X-Cache: STALE\r\n", "X-Cache: BYPASS\r\n"};
  if (!result_) return {};
  return kXCache[static_cast<size_t>(*result_)];
}

void CacheStage::reset() {
  result_.reset();
  coalesced_ = false;
  stale_.reset();
}

}  // namespace crest::proxy
