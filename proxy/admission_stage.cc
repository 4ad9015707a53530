#include "proxy/admission_stage.h"

#include "proxy/exchange.h"
#include "proxy/waiter.h"

namespace crest::proxy {

using State = limits::AdmissionTicket::State;
using observe::ShedReason;

StageResult AdmissionStage::onRequest(Exchange& exchange) {
  const PoolRuntime& pool = *exchange.upstream.pool();
  if (!pool.admission) return StageResult::Continue;
  // Queueing for a pool that cannot serve would only delay the answer.
  if (!hasHealthyServer(pool)) {
    exchange.shed(ShedReason::NoHealthy, "no healthy server in pool \"" + pool.config->name + "\"");
    return StageResult::Answered;
  }
  queue_ = pool.admission;
  priority_ = exchange.route_target->priority;
  auto waiter = std::make_shared<Waiter>(exchange.context(), &exchange);
  switch (queue_->enter(waiter, priority_)) {
    case limits::AdmissionQueue::Entry::Admitted:
      holds_slot_ = true;
      return StageResult::Continue;
    case limits::AdmissionQueue::Entry::Queued:
      waiter_ = std::move(waiter);
      exchange.client().waitFor(pool.config->queue->timeout);
      return StageResult::Waiting;
    case limits::AdmissionQueue::Entry::Refused:
      break;
  }
  queue_.reset();
  exchange.shed(ShedReason::QueueFull,
                "pool \"" + pool.config->name + "\" is busy and its queue is full");
  return StageResult::Answered;
}

bool AdmissionStage::decided(Exchange& exchange, const Waiter& waiter, State state) {
  if (&waiter != waiter_.get()) return false;
  settle(exchange, state);
  return true;
}

void AdmissionStage::onWaitTimeout(Exchange& exchange) {
  settle(exchange, queue_->withdraw(*waiter_));
}

void AdmissionStage::settle(Exchange& exchange, State state) {
  waiter_->exchange = nullptr;
  waiter_.reset();
  const conf::Pool& pool = *exchange.upstream.pool()->config;
  if (state == State::Granted) {
    holds_slot_ = true;
    exchange.client().waitOver();
    exchange.runStages(Exchange::Stage::Upstream);
    return;
  }
  queue_.reset();
  if (state == State::Shed) {
    exchange.shed(ShedReason::QueueFull,
                  "pool \"" + pool.name + "\" is busy: a more important request took this place");
  } else {
    exchange.shed(ShedReason::QueueTimeout, "pool \"" + pool.name + "\" had no free slot within " +
                                                conf::formatDuration(pool.queue->timeout));
  }
}

void AdmissionStage::release() {
  if (waiter_) {
    auto state = queue_->withdraw(*waiter_);
    waiter_->exchange = nullptr;
    waiter_.reset();
    holds_slot_ = state == State::Granted;
  }
  if (holds_slot_) queue_->leave(priority_);
  holds_slot_ = false;
  queue_.reset();
}

}  // namespace crest::proxy
