#pragma once
// The route's rate limit: a token bucket per client key. Refused requests
// get 429 with Retry-After; every response of a limited route says the
// bucket's state (RateLimit-* lines, the stage's response hook).

#include <string>

#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;

class RateLimitStage {
 public:
  StageResult onRequest(Exchange& exchange);
  // Lines for every response of the route: empty when it has no limit.
  const std::string& responseLines() const { return lines_; }
  void reset() { lines_.clear(); }

 private:
  std::string lines_;
};

}  // namespace crest::proxy
