#include "proxy/access_stage.h"

#include "proxy/exchange.h"

namespace crest::proxy {

StageResult AccessStage::onRequest(Exchange& exchange) {
  const auto& access = exchange.route->access;
  if (!access) return StageResult::Continue;
  const sockaddr_storage& client = exchange.clientAddress().address;
  bool allowed = !conf::anyContains(access->deny, client) &&
                 (!access->allow || conf::anyContains(*access->allow, client));
  if (allowed) return StageResult::Continue;
  exchange.clientInfo().listener_metrics->access_denied.add();
  exchange.answer(LocalCause::AccessDenied, "access denied");
  return StageResult::Answered;
}

}  // namespace crest::proxy
