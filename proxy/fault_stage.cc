#include "proxy/fault_stage.h"

#include "proxy/exchange.h"

namespace crest::proxy {

StageResult FaultStage::onRequest(Exchange& exchange) {
  const auto& fault = exchange.route->fault;
  if (!fault) return StageResult::Continue;
  if (!fault->header.empty() && exchange.request().find(fault->header) == nullptr)
    return StageResult::Continue;
  auto& cells = *exchange.clientInfo().listener_metrics;
  if (chance(exchange.context(), fault->abort_percent)) {
    cells.faults_abort.add();
    exchange.answerWith(LocalCause::FaultInjected, fault->abort_status, "text/plain; charset=utf-8",
                        "fault injected\n", "");
    return StageResult::Answered;
  }
  if (chance(exchange.context(), fault->delay_percent)) {
    cells.faults_delay.add();
    delaying_ = true;
    exchange.client().waitFor(fault->delay);
    return StageResult::Waiting;
  }
  return StageResult::Continue;
}

void FaultStage::onDelayOver(Exchange& exchange) {
  delaying_ = false;
  exchange.client().waitOver();
  exchange.runStages(Exchange::Stage::Cache);
}

}  // namespace crest::proxy
