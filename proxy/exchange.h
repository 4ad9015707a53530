#pragma once
// One request's life, from the first byte of its head until its response is
// recorded, whatever protocol the client speaks: the request is routed, then
// walked through the stages in runStages' order, each of which lives here by
// value. The exchange talks to its client through ExchangeClient. An idle
// keep-alive connection holds none of it; its worker keeps a few finished
// exchanges to start the next requests with, so that a keep-alive request
// allocates no parser, no buffer and no stage.

#include <event2/buffer.h>

#include <chrono>
#include <string>
#include <string_view>

#include "http/body_encoder.h"
#include "http/http1_parser.h"
#include "proxy/access_stage.h"
#include "proxy/admission_stage.h"
#include "proxy/cache_stage.h"
#include "proxy/exchange_client.h"
#include "proxy/fault_stage.h"
#include "proxy/local_answer.h"
#include "proxy/mirror_stage.h"
#include "proxy/rate_limit_stage.h"
#include "proxy/runtime.h"
#include "proxy/stage.h"
#include "proxy/upstream_connection.h"
#include "proxy/upstream_stage.h"

namespace crest::proxy {

class Waiter;

class Exchange final : public UpstreamConnection::Handler {
 public:
  // Where the walk starts or resumes; ChoosePool is the step between the
  // rate limit and the cache, where a decision from Redis resumes it.
  enum class Stage { Access, RateLimit, ChoosePool, Fault, Cache, Admission, Upstream };

  explicit Exchange(http::ParserLimits request_limits);
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Readies a finished exchange for a new request of any client, keeping
  // what its parsers and buffers have allocated.
  void restart(http::ParserLimits request_limits);
  // Serves `client` under `runtime`; `listener` null when a reload removed it.
  void bind(ExchangeClient& client, const ClientInfo& info, ExchangeContext& context,
            const Runtime& runtime, const ListenerRuntime* listener);

  // The request head has arrived: its id and clocks start.
  void begin();
  // Checks what every protocol's request must be (an origin-form target, a
  // declared body within limits.max_request_body), finds the route for
  // `host` (lower case, no port) and `target`, then runs the stages.
  void serve(std::string host);
  // The route part of that: false when none matches (answered 404).
  bool matchRoute(std::string host);
  // The stages, in order, from `from` on: a new stage goes here, in its place.
  void runStages(Stage from);

  // A stage waits for something another request or worker ends.
  bool waiting() const {
    return rate_limit.waiting() || fault.delaying() || admission.waiting() || cache.waiting();
  }
  // A stage waits on the client's wait timer (waitFor): onWaitTimeout when it expires.
  bool timedWait() const { return fault.delaying() || admission.waiting(); }
  // Waiter news, on this exchange's thread.
  void onAdmissionDecided(const Waiter& waiter, limits::AdmissionTicket::State state);
  void onFillDone(const Waiter& waiter);
  // The client's timer for waitFor() expired.
  void onWaitTimeout();

  // A response the proxy makes itself, for `cause`: one line of text; a
  // stale cached response answers instead when the pool failed.
  void answer(LocalCause cause, std::string_view message, std::string_view extra_headers = {});
  // The same with the status and body given (a route's fallback, 429).
  void answerWith(LocalCause cause, int status, std::string_view content_type,
                  std::string_view body, std::string_view extra_headers);
  // The request cannot go on for a reason of its own: an answer while no
  // response has begun, else the client's side of the exchange ends.
  void refuse(LocalCause cause, std::string_view message);
  // False, and refused, when `body_bytes` of request body are over limits.max_request_body.
  bool bodyWithinLimit(uint64_t body_bytes);
  // The pool cannot take the request: the route's fallback, a stale entry, or 503.
  void shed(observe::ShedReason reason, std::string_view why);
  // A stage wrote a whole response (`body_bytes` of body): the exchange ends.
  void answered(int status, uint64_t body_bytes);
  // The response is complete: recorded, then the client goes on.
  void complete();
  // Counts the exchange in the request metrics and the access log (once).
  void record();
  // Lets go of what the stages hold outside the exchange, in reverse order.
  void release();
  // Between two requests of a client: every stage and field as new.
  void reset();
  // Lines every response of the route carries (the stages' response hooks).
  std::string responseExtras() const;

  void onUpstreamEvent() override;
  void onUpstreamTimeout() override;

  ExchangeClient& client() { return *client_; }
  const ClientInfo& clientInfo() const { return *client_info_; }
  // Who the request is from: the connection's client, or the one trusted
  // proxies name in X-Forwarded-For (from begin() on).
  const ClientAddress& clientAddress() const { return *client_address_; }
  ExchangeContext& context() { return *context_; }
  const Runtime& runtime() const { return *runtime_; }
  const ListenerRuntime* listener() const { return listener_; }
  const http::MessageHead& request() const { return request_parser.head(); }

  http::Http1Parser request_parser;
  http::Http1Parser response_parser;
  // The request on its way to the server: its head, then its body.
  std::string request_head;
  evbuffer* request_out;
  http::BodyEncoder request_body;   // the client writes the request body here
  http::BodyEncoder response_body;  // the upstream writes the response body here
  // The HTTP/1 client's response head waiting for nothing in its output: it
  // goes out first (writeFrom).
  std::string response_head;
  std::string target;  // origin form
  std::string request_id;
  const RouteTarget* route_target = nullptr;
  const conf::Route* route = nullptr;
  bool open = false;  // a response was or will be counted
  bool request_complete = false;
  bool response_started = false;
  int response_status = 0;
  uint64_t response_bytes = 0;  // body bytes of a response the proxy made
  std::chrono::steady_clock::time_point start;
  LocalCause cause = LocalCause::None;  // why it ended otherwise than with a server's answer

  // The stages, in their order.
  AccessStage access;
  RateLimitStage rate_limit;
  FaultStage fault;
  CacheStage cache;
  AdmissionStage admission;
  MirrorStage mirror;
  UpstreamStage upstream;

 private:
  // The listener's trusted_proxies let the request name its client in
  // X-Forwarded-For: the rightmost address that is not a trusted proxy.
  void findForwardedClient(const std::vector<conf::CidrBlock>& trusted);

  ExchangeClient* client_ = nullptr;
  const ClientInfo* client_info_ = nullptr;
  const ClientAddress* client_address_ = nullptr;
  ClientAddress forwarded_client_;
  ExchangeContext* context_ = nullptr;
  const Runtime* runtime_ = nullptr;
  const ListenerRuntime* listener_ = nullptr;
};

inline void deleteExchange(Exchange* exchange) {
  delete exchange;
}

}  // namespace crest::proxy
