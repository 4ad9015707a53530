#include "proxy/rate_limit_stage.h"

#include <cinttypes>
#include <cstdio>

#include "proxy/cluster_client.h"
#include "proxy/exchange.h"
#include "proxy/request_key.h"

namespace crest::proxy {

StageResult RateLimitStage::onRequest(Exchange& exchange) {
  const RouteTarget& target = *exchange.route_target;
  if (!target.rate_limiter) return StageResult::Continue;
  const conf::RateLimit& limit = *exchange.route->rate_limit;
  key_ = requestKeyHash(limit.key, exchange.request(), exchange.clientAddress().hash,
                        exchange.context());
  if (limit.cluster) {
    ClusterClient* cluster = exchange.context().cluster();
    if (cluster != nullptr && cluster->ready()) {
      // One bucket per listener, route and client key, the same in every instance.
      const auto& routes = exchange.listener()->config->routes;
      char key[96];
      std::snprintf(key, sizeof key, "rl:%zu:%016" PRIx64,
                    static_cast<size_t>(exchange.route - routes.data()), key_);
      auto wait = std::make_shared<Wait>(Wait{&exchange});
      wait_ = wait;
      cluster->take(exchange.clientInfo().listener() + ":" + key, target.rate_limiter->spec(),
                    [wait](bool answered, const limits::RateDecision& d) {
                      if (wait->exchange != nullptr)
                        wait->exchange->rate_limit.onClusterDecision(*wait->exchange, answered, d);
                    });
      return StageResult::Waiting;
    }
    if (cluster != nullptr) cluster->countUnasked();
  }
  return decide(exchange, takeLocal(exchange));
}

limits::RateDecision RateLimitStage::takeLocal(Exchange& exchange) {
  return exchange.route_target->rate_limiter->take(key_, exchange.context().nanos());
}

void RateLimitStage::onClusterDecision(Exchange& exchange, bool answered,
                                       const limits::RateDecision& d) {
  wait_->exchange = nullptr;
  wait_.reset();
  if (decide(exchange, answered ? d : takeLocal(exchange)) == StageResult::Continue)
    exchange.runStages(Exchange::Stage::ChoosePool);
  exchange.client().wake();
}

StageResult RateLimitStage::decide(Exchange& exchange, const limits::RateDecision& d) {
  lines_ = "RateLimit-Limit: " + std::to_string(d.limit) +
           "\r\nRateLimit-Remaining: " + std::to_string(d.remaining) +
           "\r\nRateLimit-Reset: " + std::to_string(d.reset_seconds) + "\r\n";
  if (d.allowed) return StageResult::Continue;
  exchange.clientInfo().listener_metrics->rate_limited.add();
  std::string retry = std::to_string(d.retry_after);
  exchange.answerWith(LocalCause::RateLimited, describe(LocalCause::RateLimited).status,
                      "text/plain; charset=utf-8",
                      "rate limit exceeded: retry in " + retry + " s\n",
                      "Retry-After: " + retry + "\r\n");
  return StageResult::Answered;
}

void RateLimitStage::release() {
  if (!wait_) return;
  wait_->exchange = nullptr;
  wait_.reset();
}

}  // namespace crest::proxy
