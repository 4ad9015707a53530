#pragma once
// What one request/response exchange on a downstream connection holds, from
// the first byte of its request until the connection goes idle: the parsers,
// the request on its way to a server, routing, admission, cache and timing
// state. An idle keep-alive connection holds none of it; its worker keeps a
// few finished exchanges to start the next requests with, so that a
// keep-alive request allocates no parser and no buffer.

#include <event2/buffer.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "balancer/balancer.h"
#include "http/body_encoder.h"
#include "http/http1_parser.h"
#include "proxy/local_answer.h"
#include "proxy/runtime.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy {

class Waiter;

// The fields a new request starts from.
struct ExchangeState {
  const RouteTarget* route_target = nullptr;
  const conf::Route* route = nullptr;
  // Header lines added to every response of the route (RateLimit-*).
  std::string route_headers;
  // The admission queue this exchange holds a slot of or waits in.
  std::shared_ptr<limits::AdmissionQueue> admission;
  std::shared_ptr<Waiter> waiter;  // set while queued
  bool holds_slot = false;
  // Cached routes.
  std::optional<observe::CacheResult> cache_result;  // the X-Cache of this response
  std::string cache_host;                            // the key's host: lower-case, no port
  std::shared_ptr<Waiter> fill_waiter;               // set while waiting for another request's fill
  bool coalesced = false;                            // waited for a fill once: no second wait
  bool cache_leader = false;  // fills the entry others wait for (endFill owed)
  // The response being stored (all but body and times), its lifetime and its body so far.
  std::shared_ptr<cache::StoredResponse> pending_store;
  cache::Nanos pending_lifetime = 0;
  std::string pending_body;
  // An expired entry that may still answer when the pool fails.
  std::shared_ptr<const cache::StoredResponse> stale;
  uint64_t split_key = 0;
  bool switched_pool = false;
  const PoolRuntime* pool = nullptr;
  UpstreamServer* server = nullptr;  // counted in its active_requests while set
  std::unique_ptr<UpstreamConnection> upstream;
  bool upstream_timer_started = false;
  uint64_t request_bytes_sent = 0;
  http::BodyEncoder request_body;
  http::BodyEncoder response_body;
  balancer::TriedSet tried;
  uint32_t retries_left = 0;
  std::string target;
  std::string request_id;
  bool open = false;  // a response was or will be counted
  int response_status = 0;
  uint64_t response_bytes = 0;                // body bytes of a response the proxy made
  const UpstreamServer* served_by = nullptr;  // the server that answered, for the access log
  std::chrono::steady_clock::time_point upstream_start;
  std::chrono::steady_clock::duration upstream_time{};
  std::chrono::steady_clock::time_point exchange_start;
  bool request_complete = false;
  bool response_started = false;
  LocalCause cause = LocalCause::None;  // why it ended otherwise than with a server's answer
};

struct Exchange : ExchangeState {
  explicit Exchange(http::ParserLimits request_limits)
      : request_parser(http::Http1Parser::Kind::Request, request_limits),
        response_parser(http::Http1Parser::Kind::Response, http::ParserLimits{}),
        request_out(evbuffer_new()) {}
  ~Exchange() { evbuffer_free(request_out); }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Readies a finished exchange for a new request (of any connection),
  // keeping what its parsers and buffer have allocated.
  void restart(http::ParserLimits request_limits) {
    static_cast<ExchangeState&>(*this) = ExchangeState{};
    request_parser.restart(request_limits);
    response_parser.restart(http::ParserLimits{});
    request_head.clear();
    evbuffer_drain(request_out, evbuffer_get_length(request_out));
    response_head.clear();
  }

  http::Http1Parser request_parser;
  http::Http1Parser response_parser;
  // The request on its way to the server: its head, then its body.
  std::string request_head;
  evbuffer* request_out;
  // A response head for the client that waits for nothing in the
  // connection's output: it goes out first (writeFrom).
  std::string response_head;
};

inline void deleteExchange(Exchange* exchange) {
  delete exchange;
}

}  // namespace crest::proxy
