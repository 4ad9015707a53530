#include "proxy/rate_limit_stage.h"

#include "proxy/exchange.h"
#include "proxy/request_key.h"

namespace crest::proxy {

StageResult RateLimitStage::onRequest(Exchange& exchange) {
  const RouteTarget& target = *exchange.route_target;
  if (!target.rate_limiter) return StageResult::Continue;
  const ClientInfo& client = exchange.clientInfo();
  limits::RateDecision d =
      target.rate_limiter->take(requestKeyHash(exchange.route->rate_limit->key, exchange.request(),
                                               exchange.clientAddress().hash, exchange.context()),
                                exchange.context().nanos());
  lines_ = "RateLimit-Limit: " + std::to_string(d.limit) +
           "\r\nRateLimit-Remaining: " + std::to_string(d.remaining) +
           "\r\nRateLimit-Reset: " + std::to_string(d.reset_seconds) + "\r\n";
  if (d.allowed) return StageResult::Continue;
  client.listener_metrics->rate_limited.add();
  std::string retry = std::to_string(d.retry_after);
  exchange.answerWith(LocalCause::RateLimited, describe(LocalCause::RateLimited).status,
                      "text/plain; charset=utf-8",
                      "rate limit exceeded: retry in " + retry + " s\n",
                      "Retry-After: " + retry + "\r\n");
  return StageResult::Answered;
}

}  // namespace crest::proxy
