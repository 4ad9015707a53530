#pragma once
// The route's rate limit: a token bucket per client key. Refused requests
// get 429 with Retry-After; every response of a limited route says the
// bucket's state (RateLimit-* lines, the stage's response hook). A
// `scope: cluster` limit asks the bucket in Redis that every instance shares
// (ClusterClient) and waits for it at most cluster.timeout; without an
// answer it decides with the local bucket.

#include <cstdint>
#include <memory>
#include <string>

#include "limits/token_bucket.h"
#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;

class RateLimitStage {
 public:
  StageResult onRequest(Exchange& exchange);
  bool waiting() const { return wait_ != nullptr; }
  // The exchange ends: an answer from Redis still to come finds no one.
  void release();
  // Lines for every response of the route: empty when it has no limit.
  const std::string& responseLines() const { return lines_; }
  void reset() { lines_.clear(); }

 private:
  struct Wait {
    Exchange* exchange;
  };
  // The shared bucket answered (or could not): the walk goes on from here.
  void onClusterDecision(Exchange& exchange, bool answered, const limits::RateDecision& d);
  limits::RateDecision takeLocal(Exchange& exchange);
  // The bucket's decision: its lines, and 429 when refused.
  StageResult decide(Exchange& exchange, const limits::RateDecision& d);

  std::shared_ptr<Wait> wait_;
  uint64_t key_ = 0;
  std::string lines_;
};

}  // namespace crest::proxy
