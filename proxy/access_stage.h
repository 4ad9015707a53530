#pragma once
// The first stage: a route's access lists. deny is checked first, then
// allow; a refused request gets 403 and never reaches a server.

#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;

class AccessStage {
 public:
  StageResult onRequest(Exchange& exchange);
};

}  // namespace crest::proxy
