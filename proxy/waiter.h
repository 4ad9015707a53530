#pragma once
// A request waiting for something another worker may end: a slot of its
// pool's admission queue, or another request's fill of the cache entry it
// wants. The news is carried to the exchange's own thread, where `exchange`
// is read and cleared (by the stage that waits, when it stops waiting).

#include <memory>

#include "cache/response_cache.h"
#include "limits/admission_queue.h"
#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;

class Waiter : public limits::AdmissionTicket,
               public cache::FillWaiter,
               public std::enable_shared_from_this<Waiter> {
 public:
  Waiter(ExchangeContext& context, Exchange* waiting) : exchange(waiting), context_(context) {}
  void onDecided(State state) override;
  void onFillDone() override;

  Exchange* exchange;  // null once it stopped waiting; its thread only

 private:
  ExchangeContext& context_;
};

}  // namespace crest::proxy
