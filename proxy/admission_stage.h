#pragma once
// The pool's admission queue (max_active_requests): a request takes a slot,
// waits for one in its priority class, or is shed (503, or the route's
// fallback). A pool without healthy servers sheds at once rather than queue.

#include <memory>

#include "limits/admission_queue.h"
#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;
class Waiter;

class AdmissionStage {
 public:
  StageResult onRequest(Exchange& exchange);
  bool waiting() const { return waiter_ != nullptr; }
  // The queue decided about `waiter`: false unless it is this stage's wait.
  bool decided(Exchange& exchange, const Waiter& waiter, limits::AdmissionTicket::State state);
  // The queue's timeout passed while waiting.
  void onWaitTimeout(Exchange& exchange);
  // Gives back the slot held, or leaves the queue.
  void release();

 private:
  // Granted: the walk goes on to the upstream; else shed.
  void settle(Exchange& exchange, limits::AdmissionTicket::State state);

  std::shared_ptr<limits::AdmissionQueue> queue_;  // held or waited in
  std::shared_ptr<Waiter> waiter_;                 // set while queued
  limits::Priority priority_ = limits::Priority::Normal;
  bool holds_slot_ = false;
};

}  // namespace crest::proxy
