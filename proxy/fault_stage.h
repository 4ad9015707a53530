#pragma once
// A route's injected faults (rehearsals): a share of its requests is
// answered with abort_status and "fault injected" without reaching a
// server, another share waits `delay` before it goes on, on the client's
// wait timer (nothing else waits for it). Only requests carrying `header`
// are eligible when one is set. Between the pool's choice and the cache, so
// that an abort counts under its pool.

#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;

class FaultStage {
 public:
  StageResult onRequest(Exchange& exchange);
  bool delaying() const { return delaying_; }
  // The delay is over: the walk goes on at the cache.
  void onDelayOver(Exchange& exchange);
  void reset() { delaying_ = false; }

 private:
  bool delaying_ = false;
};

}  // namespace crest::proxy
